"""PyTorch scripts that run on tinynet with only their imports changed.

Each script below is PyTorch code written for these tests in the manner of a well-known public
example (not copied from it): the pytorch/examples MNIST script, a micrograd-style MLP demo written
with ``torch.nn``, and three programs of the "Learning PyTorch with Examples" tutorial (the
polynomial fit with ``nn.Sequential`` and with ``torch.optim``, and the custom autograd
``Function`` ``LegendrePolynomial3``). The test keeps each script's source once and executes it
as is with PyTorch, and with tinynet after :func:`port`, which changes the import lines and nothing
else (``import torch`` -> ``import tinynet as torch``).

Without PyTorch, the tinynet runs are checked on their own (the loss falls, the model learns).
With PyTorch installed, both runs start from the same weights (copied through ``load_state_dict``,
which the scripts call) and their losses must agree step by step to float32 rounding.
"""

import re
import textwrap

import numpy as np
import pytest

import tinynet as tn

try:
    import torch
except ImportError:  # the comparisons are skipped without PyTorch
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")


def port(source: str) -> str:
    """``source`` with its PyTorch imports pointed at tinynet; every other line is left alone."""
    out = []
    for line in source.splitlines():
        code = line.split("#")[0].strip()
        if code == "import torch":
            line = line.replace("import torch", "import tinynet as torch", 1)
        elif re.match(r"(import|from) torch\.", code):
            line = line.replace("torch.", "tinynet.", 1)
        elif code.startswith("from torch import"):
            line = line.replace("from torch import", "from tinynet import", 1)
        out.append(line)
    return "\n".join(out)


def execute(source: str, framework: str) -> dict:
    """Run a script's definitions with ``framework`` ("torch" or "tinynet"); its namespace."""
    namespace = {"__name__": f"ported_{framework}"}
    code = source if framework == "torch" else port(source)
    exec(compile(code, f"<{framework} script>", "exec"), namespace)  # noqa: S102
    return namespace


def weights_of(model) -> dict:
    """A PyTorch model's state dict as NumPy arrays (what both runs load)."""
    return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}


def test_port_changes_the_import_lines_only():
    for source in SCRIPTS.values():
        before, after = source.splitlines(), port(source).splitlines()
        changed = [(a, b) for a, b in zip(before, after) if a != b]
        assert len(before) == len(after) and changed
        for a, b in changed:
            assert re.match(r"\s*(import|from) torch", a), a
            assert "tinynet" in b and "torch" not in b.replace("as torch", ""), b


# --- the pytorch/examples MNIST script, on the embedded 8x8 digits ------------------------------

MNIST = textwrap.dedent('''
    import argparse
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    import torch.optim as optim
    from torch.optim.lr_scheduler import StepLR


    class Net(nn.Module):
        def __init__(self, dropout=(0.25, 0.5)):
            super(Net, self).__init__()
            self.conv1 = nn.Conv2d(1, 8, 3, 1)
            self.conv2 = nn.Conv2d(8, 16, 3, 1)
            self.dropout1 = nn.Dropout(dropout[0])
            self.dropout2 = nn.Dropout(dropout[1])
            self.fc1 = nn.Linear(64, 32)
            self.fc2 = nn.Linear(32, 10)

        def forward(self, x):
            x = self.conv1(x)
            x = F.relu(x)
            x = self.conv2(x)
            x = F.relu(x)
            x = F.max_pool2d(x, 2)
            x = self.dropout1(x)
            x = torch.flatten(x, 1)
            x = self.fc1(x)
            x = F.relu(x)
            x = self.dropout2(x)
            x = self.fc2(x)
            output = F.log_softmax(x, dim=1)
            return output


    def train(args, model, device, train_loader, optimizer, epoch):
        model.train()
        losses = []
        for batch_idx, (data, target) in enumerate(train_loader):
            data, target = data.to(device), target.to(device)
            optimizer.zero_grad()
            output = model(data)
            loss = F.nll_loss(output, target)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            if batch_idx % args.log_interval == 0:
                print('Train Epoch: {} [{}/{} ({:.0f}%)]\\tLoss: {:.6f}'.format(
                    epoch, batch_idx * len(data), len(train_loader.dataset),
                    100. * batch_idx / len(train_loader), loss.item()))
        return losses


    def test(model, device, test_loader):
        model.eval()
        test_loss = 0
        correct = 0
        with torch.no_grad():
            for data, target in test_loader:
                data, target = data.to(device), target.to(device)
                output = model(data)
                test_loss += F.nll_loss(output, target, reduction='sum').item()
                pred = output.argmax(dim=1, keepdim=True)
                correct += pred.eq(target.view_as(pred)).sum().item()
        test_loss /= len(test_loader.dataset)
        print('Test set: Average loss: {:.4f}, Accuracy: {}/{} ({:.0f}%)'.format(
            test_loss, correct, len(test_loader.dataset),
            100. * correct / len(test_loader.dataset)))
        return test_loss, correct


    def main(argv, data, weights=None):
        parser = argparse.ArgumentParser(description='MNIST-style example')
        parser.add_argument('--batch-size', type=int, default=64)
        parser.add_argument('--test-batch-size', type=int, default=1000)
        parser.add_argument('--epochs', type=int, default=14)
        parser.add_argument('--lr', type=float, default=1.0)
        parser.add_argument('--gamma', type=float, default=0.7)
        parser.add_argument('--no-accel', action='store_true')
        parser.add_argument('--dropout', type=float, nargs=2, default=(0.25, 0.5))
        parser.add_argument('--seed', type=int, default=1)
        parser.add_argument('--log-interval', type=int, default=10)
        parser.add_argument('--save-model', action='store_true')
        args = parser.parse_args(argv)

        use_accel = not args.no_accel and torch.accelerator.is_available()
        torch.manual_seed(args.seed)
        if use_accel:
            device = torch.accelerator.current_accelerator()
        else:
            device = torch.device("cpu")

        train_kwargs = {'batch_size': args.batch_size}
        test_kwargs = {'batch_size': args.test_batch_size}
        if use_accel:
            accel_kwargs = {'num_workers': 1, 'persistent_workers': True, 'pin_memory': True,
                            'shuffle': True}
            train_kwargs.update(accel_kwargs)
            test_kwargs.update(accel_kwargs)

        (x_train, y_train), (x_test, y_test) = data
        mean, std = x_train.mean(), x_train.std()  # transforms.Normalize((mean,), (std,))
        dataset1 = torch.utils.data.TensorDataset(
            ((torch.from_numpy(x_train) - mean) / std).unsqueeze(1), torch.from_numpy(y_train))
        dataset2 = torch.utils.data.TensorDataset(
            ((torch.from_numpy(x_test) - mean) / std).unsqueeze(1), torch.from_numpy(y_test))
        train_loader = torch.utils.data.DataLoader(dataset1, **train_kwargs)
        test_loader = torch.utils.data.DataLoader(dataset2, **test_kwargs)

        model = Net(args.dropout).to(device)
        if weights is not None:
            model.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()})
        optimizer = optim.Adadelta(model.parameters(), lr=args.lr)

        scheduler = StepLR(optimizer, step_size=1, gamma=args.gamma)
        history = []
        for epoch in range(1, args.epochs + 1):
            losses = train(args, model, device, train_loader, optimizer, epoch)
            history.append((losses, test(model, device, test_loader)))
            scheduler.step()

        if args.save_model:
            torch.save(model.state_dict(), "mnist_cnn.pt")
        return model, history
''')


@pytest.fixture(scope="module")
def digits():
    """The embedded digits as 8x8 images: the file's first 1437 to train, the last 360 to test."""
    x, y = (t.numpy() for t in tn.datasets.digits().tensors)
    x = x.reshape(-1, 8, 8)
    return (x[:1437], y[:1437]), (x[1437:], y[1437:])


def test_mnist_script_trains_on_tinynet(digits, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    script = execute(MNIST, "tinynet")
    with pytest.warns(UserWarning, match="torch.load cannot read it"):
        model, history = script["main"](["--epochs", "4", "--no-accel", "--save-model"], digits)
    losses = [loss for epoch_losses, _ in history for loss in epoch_losses]
    assert len(losses) == 4 * 23  # ceil(1437 / 64) batches per epoch
    assert np.mean(losses[-10:]) < 0.6 * np.mean(losses[:5])
    # A small net, no shuffling, dropout: PyTorch's run reaches ~80% in 4 epochs (chance: 10%).
    test_loss, correct = history[-1][1]
    assert correct >= 0.7 * 360 and test_loss < 1.1
    saved = tn.load("mnist_cnn.pt")  # torch.save wrote a tinynet checkpoint under the .pt name
    assert saved.keys() == model.state_dict().keys()
    np.testing.assert_array_equal(saved["fc2.weight"].numpy(), model.fc2.weight.detach().numpy())


def test_mnist_script_on_the_accelerator_branch(digits, monkeypatch):
    # The script's GPU branch (accelerator device, workers, pinned memory, shuffling) on the
    # stand-in device, which runs the GPU code path without a GPU.
    monkeypatch.setattr(tn.accelerator, "is_available", lambda: True)
    monkeypatch.setattr(tn.accelerator, "current_accelerator", lambda: tn.device("standin"))
    script = execute(MNIST, "tinynet")
    with pytest.warns(UserWarning, match="num_workers=1 and pin_memory=True have no effect"):
        model, history = script["main"](["--epochs", "1"], digits)
    assert all(p.device == "standin" for p in model.parameters())
    test_loss, correct = history[0][1]
    assert np.isfinite(test_loss) and correct > 0.3 * 360  # one epoch (chance: 10%)


@needs_torch
def test_mnist_script_matches_pytorch_step_by_step(digits):
    ours, theirs = execute(MNIST, "tinynet"), execute(MNIST, "torch")
    torch.manual_seed(0)
    weights = weights_of(theirs["Net"]())
    # Dropout masks come from each library's own generator, so it is off for the comparison.
    argv = ["--epochs", "2", "--no-accel", "--dropout", "0", "0"]
    _, history = ours["main"](argv, digits, weights)
    _, expected = theirs["main"](argv, digits, weights)
    for (losses, (test_loss, correct)), (t_losses, (t_test_loss, t_correct)) in zip(history,
                                                                                     expected):
        np.testing.assert_allclose(losses, t_losses, rtol=2e-4, atol=1e-5)
        assert test_loss == pytest.approx(t_test_loss, rel=2e-4)
        assert abs(correct - t_correct) <= 1  # a near-tie may round either way


# --- a micrograd-style demo written with torch.nn: an MLP on two moons, max-margin loss -----------

MICROGRAD = textwrap.dedent('''
    import torch
    import torch.nn as nn


    class MLP(nn.Module):
        """micrograd's MLP(nin, nouts): Linear layers with ReLU between them."""

        def __init__(self, nin, nouts):
            super().__init__()
            sizes = [nin] + nouts
            self.layers = nn.ModuleList([nn.Linear(sizes[i], sizes[i + 1])
                                         for i in range(len(nouts))])

        def forward(self, x):
            for i, layer in enumerate(self.layers):
                x = layer(x)
                if i != len(self.layers) - 1:
                    x = torch.relu(x)
            return x


    def loss(model, X, y, batch_size=None):
        if batch_size is None:
            Xb, yb = X, y
        else:
            ri = torch.randperm(X.shape[0])[:batch_size]
            Xb, yb = X[ri], y[ri]
        scores = model(Xb).squeeze(-1)
        # svm "max-margin" loss
        losses = torch.relu(1 + -yb * scores)
        data_loss = losses.sum() * (1.0 / losses.numel())
        # L2 regularization
        alpha = 1e-4
        reg_loss = alpha * sum((p * p).sum() for p in model.parameters())
        total_loss = data_loss + reg_loss
        # also get accuracy
        accuracy = ((yb > 0) == (scores > 0)).float().mean()
        return total_loss, accuracy


    def main(X, y, steps=100, weights=None):
        torch.manual_seed(1337)
        X = torch.tensor(X, dtype=torch.float32)
        y = torch.tensor(y, dtype=torch.float32) * 2 - 1  # labels -1 / +1
        model = MLP(2, [16, 16, 1])
        if weights is not None:
            model.load_state_dict({k: torch.tensor(v) for k, v in weights.items()})
        print(model)
        print("number of parameters", sum(p.numel() for p in model.parameters()))
        history = []
        for k in range(steps):
            total_loss, acc = loss(model, X, y)
            model.zero_grad()
            total_loss.backward()
            learning_rate = 1.0 - 0.9 * k / 100  # sgd with a decaying rate
            with torch.no_grad():
                for p in model.parameters():
                    p -= learning_rate * p.grad
            if k % 10 == 0:
                print(f"step {k} loss {total_loss.item()}, accuracy {acc.item() * 100}%")
            history.append((total_loss.item(), acc.item()))
        return model, history
''')


@pytest.fixture(scope="module")
def moons():
    """Two interleaving half circles with noise (what sklearn's make_moons draws): 100 points."""
    rng = np.random.default_rng(1)
    t = np.pi * rng.random(100)
    upper = rng.random(100) < 0.5
    x = np.where(upper, np.cos(t), 1 - np.cos(t))
    y = np.where(upper, np.sin(t), 0.5 - np.sin(t))
    return np.stack([x, y], 1) + 0.1 * rng.standard_normal((100, 2)), (~upper).astype(np.int64)


def test_micrograd_demo_learns_the_moons_on_tinynet(moons):
    model, history = execute(MICROGRAD, "tinynet")["main"](*moons)
    losses, accuracies = zip(*history)
    assert losses[-1] < 0.2 * losses[0]
    assert accuracies[-1] >= 0.9
    assert sum(p.numel() for p in model.parameters()) == 337  # micrograd's demo model


@needs_torch
def test_micrograd_demo_matches_pytorch_step_by_step(moons):
    ours, theirs = execute(MICROGRAD, "tinynet"), execute(MICROGRAD, "torch")
    torch.manual_seed(0)
    weights = weights_of(theirs["MLP"](2, [16, 16, 1]))
    _, history = ours["main"](*moons, steps=60, weights=weights)
    _, expected = theirs["main"](*moons, steps=60, weights=weights)
    np.testing.assert_allclose(np.array(history), np.array(expected), rtol=1e-4, atol=1e-6)


# --- "Learning PyTorch with Examples": the third-order polynomial fit of sin(x) -------------------

POLYNOMIAL = textwrap.dedent('''
    import math
    import torch


    def data():
        # Create Tensors to hold input and outputs.
        x = torch.linspace(-math.pi, math.pi, 2000)
        y = torch.sin(x)
        # The output y is a linear function of (x, x^2, x^3): a linear layer on those features.
        p = torch.tensor([1, 2, 3])
        xx = x.unsqueeze(-1).pow(p)
        return xx, y


    def polynomial_model(weights=None):
        # y = a + b x + c x^2 + d x^3: a Linear layer on (x, x^2, x^3), flattened to (N,).
        model = torch.nn.Sequential(
            torch.nn.Linear(3, 1),
            torch.nn.Flatten(0, 1)
        )
        if weights is not None:
            model.load_state_dict({k: torch.tensor(v) for k, v in weights.items()})
        return model


    def fit_nn(steps=2000, weights=None):
        """The nn package: nn.Sequential, MSELoss(reduction='sum'), a manual update."""
        xx, y = data()
        model = polynomial_model(weights)
        loss_fn = torch.nn.MSELoss(reduction='sum')
        learning_rate = 1e-6
        losses = []
        for t in range(steps):
            y_pred = model(xx)
            loss = loss_fn(y_pred, y)
            if t % 100 == 99:
                print(t, loss.item())
            losses.append(loss.item())
            model.zero_grad()
            loss.backward()
            with torch.no_grad():
                for param in model.parameters():
                    param -= learning_rate * param.grad
        linear_layer = model[0]
        print(f'Result: y = {linear_layer.bias.item()} + {linear_layer.weight[:, 0].item()} x + '
              f'{linear_layer.weight[:, 1].item()} x^2 + {linear_layer.weight[:, 2].item()} x^3')
        return model, losses


    def fit_optim(steps=2000, weights=None):
        """The optim package: RMSprop does the update."""
        xx, y = data()
        model = polynomial_model(weights)
        loss_fn = torch.nn.MSELoss(reduction='sum')
        learning_rate = 1e-3
        optimizer = torch.optim.RMSprop(model.parameters(), lr=learning_rate)
        losses = []
        for t in range(steps):
            y_pred = model(xx)
            loss = loss_fn(y_pred, y)
            losses.append(loss.item())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return model, losses


    class LegendrePolynomial3(torch.autograd.Function):
        """A custom autograd Function: P3(x) = (5x^3 - 3x) / 2, with its derivative."""

        @staticmethod
        def forward(ctx, input):
            ctx.save_for_backward(input)
            return 0.5 * (5 * input ** 3 - 3 * input)

        @staticmethod
        def backward(ctx, grad_output):
            input, = ctx.saved_tensors
            return grad_output * 1.5 * (5 * input ** 2 - 1)


    def fit_legendre(steps=2000):
        """y = a + b P3(c + d x), with hand-written gradient steps on four scalars."""
        dtype = torch.float
        device = torch.device("cpu")
        x = torch.linspace(-math.pi, math.pi, 2000, device=device, dtype=dtype)
        y = torch.sin(x)
        a = torch.full((), 0.0, device=device, dtype=dtype, requires_grad=True)
        b = torch.full((), -1.0, device=device, dtype=dtype, requires_grad=True)
        c = torch.full((), 0.0, device=device, dtype=dtype, requires_grad=True)
        d = torch.full((), 0.3, device=device, dtype=dtype, requires_grad=True)
        learning_rate = 5e-6
        losses = []
        for t in range(steps):
            P3 = LegendrePolynomial3.apply
            y_pred = a + b * P3(c + d * x)
            loss = (y_pred - y).pow(2).sum()
            losses.append(loss.item())
            loss.backward()
            with torch.no_grad():
                a -= learning_rate * a.grad
                b -= learning_rate * b.grad
                c -= learning_rate * c.grad
                d -= learning_rate * d.grad
                a.grad = None
                b.grad = None
                c.grad = None
                d.grad = None
        print(f'Result: y = {a.item()} + {b.item()} * P3({c.item()} + {d.item()} x)')
        return (a.item(), b.item(), c.item(), d.item()), losses
''')

SCRIPTS = {"mnist": MNIST, "micrograd": MICROGRAD, "polynomial": POLYNOMIAL}


@pytest.mark.parametrize("fit", ["fit_nn", "fit_optim"])
def test_polynomial_fits_sin_on_tinynet(fit):
    model, losses = execute(POLYNOMIAL, "tinynet")[fit](steps=600)
    assert losses[-1] < 0.05 * losses[0] and losses[-1] < 50  # sum of 2000 squared errors
    assert model[0].weight.shape == (1, 3)


def test_legendre_function_fits_sin_on_tinynet():
    (a, b, c, d), losses = execute(POLYNOMIAL, "tinynet")["fit_legendre"](steps=500)
    assert losses[-1] < 0.25 * losses[0]
    assert all(np.isfinite([a, b, c, d]))


@needs_torch
@pytest.mark.parametrize("fit", ["fit_nn", "fit_optim"])
def test_polynomial_fits_match_pytorch_step_by_step(fit):
    ours, theirs = execute(POLYNOMIAL, "tinynet"), execute(POLYNOMIAL, "torch")
    torch.manual_seed(0)
    weights = weights_of(torch.nn.Linear(3, 1))
    weights = {f"0.{k}": v for k, v in weights.items()}
    _, losses = ours[fit](steps=300, weights=weights)
    _, expected = theirs[fit](steps=300, weights=weights)
    np.testing.assert_allclose(losses, expected, rtol=1e-4)


@needs_torch
def test_legendre_function_matches_pytorch_step_by_step():
    ours, theirs = execute(POLYNOMIAL, "tinynet"), execute(POLYNOMIAL, "torch")
    params, losses = ours["fit_legendre"](steps=300)
    t_params, expected = theirs["fit_legendre"](steps=300)
    np.testing.assert_allclose(losses, expected, rtol=1e-4)
    np.testing.assert_allclose(params, t_params, rtol=1e-4, atol=1e-6)
