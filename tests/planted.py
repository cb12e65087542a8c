"""Functions with planted bugs, for the tests of tinynet's gradient checks.

Each one returns numbers a careless check would accept; the tests that use them assert that
gradcheck says what is wrong (``test_gradcheck_inplace.py``, ``test_gradcheck_report.py``).
"""

import tinynet as tn


class Square(tn.Function):
    """x^2  ->  grad_x = 2 x g (correct; the planted variants below override backward)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        return 2 * x * grad_out


class WrongSquare(Square):
    """x^2 with backward 3x instead of 2x: every diagonal Jacobian entry is wrong."""

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        return 3 * x * grad_out


class ClampSavedInput(Square):
    """x^2 whose backward clamps the saved input in place before using it."""

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        ctx.xp.clip(x, 0.5, None, out=x)
        return 2 * x * grad_out


class TripleInPlace(tn.Function):
    """3x, with a backward that scales the upstream gradient in place."""

    @staticmethod
    def forward(ctx, a):
        return a * 3

    @staticmethod
    def backward(ctx, grad_out):
        grad_out *= 3
        return grad_out
