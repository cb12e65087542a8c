"""Containers: ``Sequential``, ``ModuleList``, ``ModuleDict`` (``torch.nn``'s names and keys).

Children of ``Sequential`` and ``ModuleList`` are named ``"0"``, ``"1"``, ... so their state-dict
keys are ``0.weight``, ``layers.1.bias``; a ``ModuleDict`` names them by key (``blocks.a.weight``).
Deleting or inserting renumbers the children, as in PyTorch.
"""

from __future__ import annotations

from collections import OrderedDict

from .module import Module


class Sequential(Module):
    """Modules applied one after another; children named ``0``, ``1``, ... (or by an OrderedDict).

    Example:
        >>> model = tn.nn.Sequential(tn.nn.Linear(64, 32), tn.nn.ReLU(), tn.nn.Linear(32, 10))
        >>> model.state_dict().keys()   # '0.weight', '0.bias', '2.weight', '2.bias'
    """

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            for name, m in modules[0].items():
                self.add_module(name, m)
        else:
            for i, m in enumerate(modules):
                self.add_module(str(i), m)

    def forward(self, x):
        for m in self._modules.values():
            x = m(x)
        return x

    def __getitem__(self, index):
        items = list(self._modules.items())
        if isinstance(index, slice):
            return Sequential(OrderedDict(items[index]))
        return items[index][1]

    def __setitem__(self, index: int, module: Module) -> None:
        key = list(self._modules)[index]
        self.add_module(key, module)

    def __delitem__(self, index) -> None:
        keys = list(self._modules)
        for key in keys[index] if isinstance(index, slice) else [keys[index]]:
            del self._modules[key]
        if all(k.isdigit() for k in keys):  # numbered children stay numbered 0..n-1
            _renumber(self)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def append(self, module: Module) -> Sequential:
        self.add_module(str(len(self._modules)), module)
        return self

    def extend(self, modules) -> Sequential:
        for m in modules:
            self.append(m)
        return self

    def insert(self, index: int, module: Module) -> Sequential:
        _insert(self, index, module)
        return self


class ModuleList(Module):
    """A list of modules, registered as children ``0``, ``1``, ... (no forward of its own)."""

    def __init__(self, modules=None):
        super().__init__()
        for m in modules or ():
            self.append(m)

    def append(self, module: Module) -> ModuleList:
        self.add_module(str(len(self._modules)), module)
        return self

    def extend(self, modules) -> ModuleList:
        for m in modules:
            self.append(m)
        return self

    def __getitem__(self, index):
        values = list(self._modules.values())
        if isinstance(index, slice):
            return ModuleList(values[index])
        return values[index]

    def __setitem__(self, index: int, module: Module) -> None:
        key = list(self._modules)[index]
        self.add_module(key, module)

    def __delitem__(self, index) -> None:
        keys = list(self._modules)
        for key in keys[index] if isinstance(index, slice) else [keys[index]]:
            del self._modules[key]
        _renumber(self)

    def __iadd__(self, modules) -> ModuleList:
        return self.extend(modules)

    def insert(self, index: int, module: Module) -> None:
        _insert(self, index, module)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())


class ModuleDict(Module):
    """A dict of modules, registered as children under their keys (insertion order)."""

    def __init__(self, modules=None):
        super().__init__()
        for name, m in (modules or {}).items():
            self.add_module(name, m)

    def __getitem__(self, key: str) -> Module:
        return self._modules[key]

    def __setitem__(self, key: str, module: Module) -> None:
        self.add_module(key, module)

    def __delitem__(self, key: str) -> None:
        del self._modules[key]

    def __contains__(self, key: str) -> bool:
        return key in self._modules

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules)

    def keys(self):
        return self._modules.keys()

    def values(self):
        return self._modules.values()

    def items(self):
        return self._modules.items()

    def update(self, modules) -> None:
        for name, m in (modules.items() if hasattr(modules, "items") else modules):
            self.add_module(name, m)

    def pop(self, key: str) -> Module:
        module = self._modules[key]
        del self._modules[key]
        return module

    def clear(self) -> None:
        self._modules.clear()


def _renumber(container: Module) -> None:
    """Name the children "0", "1", ... again, keeping their order (after a deletion)."""
    modules = list(container._modules.values())
    container._modules.clear()
    for i, m in enumerate(modules):
        container._modules[str(i)] = m


def _insert(container: Module, index: int, module: Module) -> None:
    if not isinstance(module, Module):
        raise TypeError(f"insert: expected a Module, got {type(module).__name__}")
    modules = list(container._modules.values())
    modules.insert(index, module)
    container._modules.clear()
    for i, m in enumerate(modules):
        container._modules[str(i)] = m
