"""Parameter initialisation (seeded), matching PyTorch's ``torch.nn.init``."""
