"""Placeholder replaced below."""
class GradcheckError(AssertionError):
    pass
def gradcheck(*a, **k): raise NotImplementedError
def gradgradcheck(*a, **k): raise NotImplementedError
