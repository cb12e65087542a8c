"""Bad input gets one clear error naming the op (or layer), the argument and the values.

By class: operand coercion (an operand that is not one, a Python integer that does not fit the
tensor's dtype), dimension arguments (permute), backward's gradient argument, layer constructors,
and pooling/convolution arguments. Operators follow Python's protocol, as PyTorch's do: an
operand they cannot take makes them return NotImplemented, so ``t == None`` is False and
``t + 'a'`` raises Python's own "unsupported operand type(s)".
"""

import numpy as np
import pytest

import tinynet as tn
import tinynet.nn.functional as F


# --- operands -------------------------------------------------------------------------------------


def test_equality_with_something_that_is_not_an_operand_is_identity():
    t = tn.zeros(2)
    assert (t == None) is False and (t != None) is True  # noqa: E711 - the point of the test
    assert (t == "a") is False and t != object()
    assert t in [None, t] and t not in [None, "a"]


@pytest.mark.parametrize("op", ["+", "-", "*", "/", "**", "@", "<", "&"])
def test_arithmetic_with_a_string_raises_pythons_error(op):
    t = tn.zeros(2)
    python_says = r"unsupported operand type\(s\) for|not supported between|can't multiply sequence"
    with pytest.raises(TypeError, match=python_says):
        eval(f"t {op} 'a'")  # noqa: S307 - the operator itself is what is tested
    with pytest.raises(TypeError):  # str's own message for + and *, Python's for the others
        eval(f"'a' {op} t")  # noqa: S307


def test_in_place_with_a_string_raises_pythons_error():
    t = tn.zeros(2)
    with pytest.raises(TypeError, match=r"unsupported operand type\(s\) for \+=: 'Tensor' and "
                                        r"'str'"):
        t += "a"
    assert t._version == 0


def test_the_function_form_names_the_op_and_the_operand():
    with pytest.raises(TypeError, match=r"^mul: unsupported operand of type str \('a'\) next to "
                                        r"a tensor"):
        tn.mul(tn.zeros(2), "a")
    with pytest.raises(TypeError, match=r"^maximum: unsupported operand of type NoneType"):
        tn.maximum(None, tn.zeros(2))


class Reflected:
    """An object of another library that knows how to add a Tensor to itself."""

    def __radd__(self, other):
        return "reflected"


def test_an_operand_of_another_type_gets_its_reflected_method():
    assert tn.zeros(2) + Reflected() == "reflected"


# --- dims and backward's gradient -------------------------------------------------------------


@pytest.mark.parametrize("dims, error, message", [
    ((0,), ValueError, r"permute: dims \(0,\) name 1 dim\(s\), but a tensor of shape \(2, 3\) has "
                       r"2"),
    ((0, 1, 2), ValueError, r"name 3 dim\(s\), but a tensor of shape \(2, 3\) has 2"),
    ((0, 5), IndexError, "permute: dim 5 is out of range for a tensor with 2 dimension"),
    ((1, 1), ValueError, r"permute: \(1, 1\) is not a permutation .* \(a dim is repeated\)"),
    ((0.0, 1), TypeError, "permute: dim must be an int, got 0.0"),
])
def test_permute_names_the_dims_and_the_shape(dims, error, message):
    with pytest.raises(error, match=message):
        tn.zeros(2, 3).permute(*dims)


def test_permute_accepts_negative_dims_and_a_tuple():
    assert tn.zeros(2, 3, 4).permute(-1, 0, 1).shape == (4, 2, 3)
    assert tn.zeros(2, 3).permute((1, 0)).shape == (3, 2)


def test_backward_takes_an_array_as_the_one_gradient_of_its_output():
    """A NumPy array (or a list) is the gradient of the one output, not a list of gradients."""
    x = tn.tensor([1.0, 2.0], requires_grad=True)
    (x * 3).backward(np.array([1.0, -1.0]))
    assert x.grad.tolist() == [3.0, -3.0]
    x.grad = None
    (x * 3).backward([2.0, 0.5])
    assert x.grad.tolist() == [6.0, 1.5]


def test_backward_gradient_errors_name_the_problem():
    x = tn.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match=r"backward: gradient shape \(3,\) does not match the "
                                           r"output shape \(2,\)"):
        (x * 3).backward(np.ones(3))
    with pytest.raises(TypeError, match="backward: the gradient must be a Tensor, an array or "
                                        "numbers, got str"):
        (x * 3).backward("a")
    with pytest.raises(RuntimeError, match=r"backward: gradient is an array on standin, the "
                                           r"output is on cpu"):
        (x * 3).backward(tn.ones(2, device="standin").data)
    y = x * 3
    with pytest.raises(RuntimeError, match=r"backward: got 1 gradient\(s\) for 2 output\(s\)"):
        tn.autograd.backward([y, y], [tn.ones(2)])
    with pytest.raises(RuntimeError, match=r"tn.grad: got 2 gradient\(s\) for 1 output\(s\)"):
        tn.grad([y], [x], [tn.ones(2), tn.ones(2)])


# --- layers and pooling: constructor and argument checks --------------------------------------


ARGUMENTS = [
    (lambda: tn.nn.Linear(-1, 2), ValueError, "Linear: in_features must be an int >= 0, got -1"),
    (lambda: tn.nn.Linear(3, 2.5), TypeError, r"Linear: out_features must be an int, got 2.5 "
                                              r"\(float\)"),
    (lambda: tn.nn.Linear(True, 2), TypeError, "Linear: in_features must be an int, got True"),
    (lambda: tn.nn.Embedding(-3, 2), ValueError, "Embedding: num_embeddings must be an int >= 0"),
    (lambda: tn.nn.Conv2d(0, 2, 3), ValueError, "Conv2d: in_channels must be an int >= 1, got 0"),
    (lambda: tn.nn.Conv2d(1, 2, 0), ValueError, r"Conv2d: kernel_size must be an int or a pair "
                                                r"of ints, each positive, got 0"),
    (lambda: tn.nn.Conv2d(1, 2, 3, stride=(1, 0)), ValueError,
     r"Conv2d: stride must be .* each positive, got \(1, 0\)"),
    (lambda: tn.nn.Conv2d(1, 2, 3, padding=-1), ValueError,
     "Conv2d: padding must be an int or a pair of ints, each >= 0, got -1"),
    (lambda: tn.nn.Conv2d(1, 2, 3, groups=0), ValueError, "Conv2d: groups must be an int >= 1"),
    (lambda: tn.nn.Conv2d(1, 2, (3, 3, 3)), TypeError,
     r"Conv2d: kernel_size must be an int or a pair of ints, got \(3, 3, 3\)"),
    (lambda: tn.nn.MaxPool2d(0), ValueError, "MaxPool2d: kernel_size must be .* positive, got 0"),
    (lambda: tn.nn.AvgPool2d(2, stride=0), ValueError, "AvgPool2d: stride must be .* got 0"),
    (lambda: tn.nn.AvgPool2d(2, divisor_override=0), ValueError,
     "AvgPool2d: divisor_override must be an int >= 1, got 0"),
    (lambda: tn.nn.AdaptiveAvgPool2d((2, 0)), ValueError,
     "AdaptiveAvgPool2d: output_size must be an int >= 1, got 0"),
    (lambda: tn.nn.BatchNorm1d(0), ValueError, "BatchNorm1d: num_features must be an int >= 1"),
    (lambda: tn.nn.BatchNorm2d(4, momentum=1.5), ValueError,
     r"BatchNorm2d: momentum must be in \[0.0, 1.0\], got 1.5"),
    (lambda: tn.nn.BatchNorm2d(4, eps=-1e-5), ValueError, "BatchNorm2d: eps must be in"),
    (lambda: tn.nn.LayerNorm((4, 0)), ValueError, "LayerNorm: normalized_shape must be an int >= "
                                                  "1, got 0"),
    (lambda: tn.nn.LSTM(0, 4), ValueError, "LSTM: input_size must be an int >= 1, got 0"),
    (lambda: tn.nn.GRU(3, 4, num_layers=-1), ValueError, "GRU: num_layers must be an int >= 1"),
    (lambda: tn.nn.RNN(3, 4, dropout="0.1"), TypeError, "RNN: dropout must be a number"),
    (lambda: F.avg_pool2d(tn.zeros(1, 1, 4, 4), kernel_size=0), ValueError,
     "avg_pool2d: kernel_size must be an int or a pair of ints, each positive, got 0"),
    (lambda: F.max_pool2d(tn.zeros(1, 1, 4, 4), 2, stride=0), ValueError,
     "max_pool2d: stride must be an int or a pair of ints, each positive, got 0"),
    (lambda: F.max_pool2d(tn.zeros(1, 1, 4, 4), 2, dilation=0), ValueError,
     "max_pool2d: dilation must be"),
    (lambda: F.avg_pool2d(tn.zeros(1, 1, 4, 4), 2, padding=-1), ValueError,
     "avg_pool2d: padding must be an int or a pair of ints, each >= 0, got -1"),
    (lambda: F.conv2d(tn.zeros(1, 1, 4, 4), tn.zeros(1, 1, 3, 3), dilation=0), ValueError,
     "conv2d: dilation must be an int or a pair of ints, each positive, got 0"),
    (lambda: F.adaptive_avg_pool2d(tn.zeros(1, 1, 4, 4), -2), ValueError,
     "adaptive_avg_pool2d: output_size must be"),
]


@pytest.mark.parametrize("make, error, message", ARGUMENTS)
def test_layer_and_pooling_arguments_are_checked_naming_the_argument(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_sizes_pytorch_accepts_still_work():
    assert tn.nn.Linear(0, 3).weight.shape == (3, 0)
    assert tn.nn.Embedding(0, 2).weight.shape == (0, 2)
    assert tn.nn.Conv2d(2, 4, (1, 3), stride=(2, 1), padding=(0, 1)).weight.shape == (4, 2, 1, 3)
    assert tn.nn.BatchNorm1d(3, momentum=None).momentum is None
    assert tn.nn.AdaptiveAvgPool2d((None, 2))(tn.zeros(1, 1, 4, 4)).shape == (1, 1, 4, 2)
