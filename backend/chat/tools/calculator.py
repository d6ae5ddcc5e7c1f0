"""The calculator tool: arithmetic a model gets wrong, worked out exactly.

The expression is parsed with `ast` and walked over a whitelist: numbers, the operators
+ - * / // % **, unary + -, the constants pi, e, tau and calls of the functions in
`FUNCTIONS` by plain name. Nothing is executed; every size that could make the work grow
without bound (length, node count, int size, exponents, factorials, rounding places) is
checked before the work is done.
"""

from __future__ import annotations

import ast
import math
import operator
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from .registry import Tool, ToolError

__all__ = ["FUNCTIONS", "MAX_EXPRESSION_CHARS", "CalculatorTool", "calculate", "evaluate", "format_number"]

Number = int | float

MAX_EXPRESSION_CHARS = 500
# 200 nodes is a long formula (`sqrt(3**2 + 4**2)` is 8); it also bounds the walk's recursion depth.
MAX_NODES = 200
# Int results stay below 10**3000: 1000! (2568 digits, the largest factorial allowed) fits, an
# int of that size multiplies in microseconds, and it stays under Python's 4300-digit limit on
# int-to-text conversion. Powers are checked against it before they are computed.
MAX_INT_DIGITS = 3000
_INT_LIMIT = 10**MAX_INT_DIGITS
_INT_LIMIT_BITS = math.log2(10) * MAX_INT_DIGITS
MAX_FACTORIAL = 1000
MAX_ROUND_PLACES = 400  # a float has no digits beyond 10**-324 or above 10**308
EXACT_INT_DIGITS = 60  # longer ints are written with 15 significant digits
TOO_LARGE = "the result is too large"

CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e, "tau": math.tau}

_BINARY: dict[type[ast.operator], Callable[[Number, Number], Number]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
}


@dataclass(frozen=True, slots=True)
class _Function:
    call: Callable[..., Number]
    min_args: int
    max_args: int | None  # None: any number


def _whole(value: Number, what: str) -> int:
    if isinstance(value, float):
        if not value.is_integer():
            raise ToolError(f"{what} needs whole numbers, not {format_number(value)}")
        return int(value)
    return value


def _factorial(x: Number) -> int:
    if (isinstance(x, float) and not x.is_integer()) or x < 0 or x > MAX_FACTORIAL:
        raise ToolError(f"factorial needs a whole number from 0 to {MAX_FACTORIAL}, not {format_number(x)}")
    return math.factorial(int(x))


def _round(x: Number, places: Number = 0) -> Number:
    places = _whole(places, "round's number of places")
    if abs(places) > MAX_ROUND_PLACES:
        raise ToolError(f"round's number of places must be from -{MAX_ROUND_PLACES} to {MAX_ROUND_PLACES}")
    return round(x) if places == 0 else round(x, places)


def _log(x: Number, base: Number | None = None) -> float:
    return math.log(x) if base is None else math.log(x, base)


def _gcd(*args: Number) -> int:
    return math.gcd(*(_whole(a, "gcd") for a in args))


def _lcm(*args: Number) -> int:
    result = 1
    for a in args:  # one step at a time, so that the size check sees each step
        result = int(_checked(math.lcm(result, _whole(a, "lcm"))))
    return result


FUNCTIONS: dict[str, _Function] = {
    "sqrt": _Function(math.sqrt, 1, 1),
    "cbrt": _Function(math.cbrt, 1, 1),
    "abs": _Function(abs, 1, 1),
    "round": _Function(_round, 1, 2),
    "floor": _Function(math.floor, 1, 1),
    "ceil": _Function(math.ceil, 1, 1),
    "exp": _Function(math.exp, 1, 1),
    "ln": _Function(math.log, 1, 1),
    "log": _Function(_log, 1, 2),
    "log10": _Function(math.log10, 1, 1),
    "log2": _Function(math.log2, 1, 1),
    "sin": _Function(math.sin, 1, 1),
    "cos": _Function(math.cos, 1, 1),
    "tan": _Function(math.tan, 1, 1),
    "asin": _Function(math.asin, 1, 1),
    "acos": _Function(math.acos, 1, 1),
    "atan": _Function(math.atan, 1, 1),
    "atan2": _Function(math.atan2, 2, 2),
    "sinh": _Function(math.sinh, 1, 1),
    "cosh": _Function(math.cosh, 1, 1),
    "tanh": _Function(math.tanh, 1, 1),
    "degrees": _Function(math.degrees, 1, 1),
    "radians": _Function(math.radians, 1, 1),
    "factorial": _Function(_factorial, 1, 1),
    "gcd": _Function(_gcd, 1, None),
    "lcm": _Function(_lcm, 1, None),
    "min": _Function(lambda *args: min(args), 1, None),
    "max": _Function(lambda *args: max(args), 1, None),
    "hypot": _Function(math.hypot, 1, None),
}

_ALLOWED = f"the constants {', '.join(CONSTANTS)} and the functions {', '.join(FUNCTIONS)}"

# `15%` is 15/100 when nothing that could be an operand follows it: `10 % 3` stays a remainder.
_PERCENT = re.compile(r"(?<![\w.])((?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)%(?!\s*[\w.(])")
_SYMBOLS = str.maketrans({"^": "**", "×": "*", "·": "*", "÷": "/", "−": "-"})


def format_number(value: Number) -> str:
    """Ints exactly (up to 60 digits), floats with up to 12 significant digits, whole floats without `.0`."""
    if isinstance(value, int):
        if abs(value) < 10**EXACT_INT_DIGITS:
            return str(value)
        mantissa, exponent = f"{Decimal(value):.14e}".split("e")
        return f"{mantissa.rstrip('0').rstrip('.')}e{exponent}"
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.12g}"


def evaluate(expression: str) -> tuple[str, Number]:
    """The expression as it was understood (normalised) and its value; ToolError for anything else."""
    tree = _parse(expression)
    return ast.unparse(tree), _value(tree.body)


def calculate(expression: str) -> str:
    """`2 + 3 * 4 = 14`: the normalised expression and its value."""
    shown, value = evaluate(expression)
    return f"{shown} = {format_number(value)}"


def _parse(expression: str) -> ast.Expression:
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ToolError(f"the expression is too long ({len(expression)} characters; at most {MAX_EXPRESSION_CHARS})")
    text = _PERCENT.sub(r"(\1/100)", expression.translate(_SYMBOLS)).strip()
    if not text:
        raise ToolError("the expression is empty")
    try:
        # `2(3)` warns "'int' object is not callable", an error under `-W error`; the walk refuses it
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise ToolError(f"that is not an arithmetic expression: {exc.msg}") from None
    except (ValueError, RecursionError, MemoryError):  # a NUL character; nesting the parser gives up on
        raise ToolError("that is not an arithmetic expression") from None
    nodes = sum(isinstance(node, ast.expr) for node in ast.walk(tree))
    if nodes > MAX_NODES:
        raise ToolError(f"the expression is too complicated ({nodes} parts; at most {MAX_NODES})")
    return tree


def _value(node: ast.expr) -> Number:
    try:
        return _checked(_compute(node))
    except ZeroDivisionError:
        raise ToolError("division by zero") from None
    except OverflowError:
        raise ToolError(TOO_LARGE) from None


def _compute(node: ast.expr) -> Number:
    if isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ToolError(f"{ast.unparse(node)} is not a number this calculator works with")
        return _checked(value)
    if isinstance(node, ast.Name):
        if node.id not in CONSTANTS:
            raise ToolError(f"unknown name '{node.id}'; allowed: {_ALLOWED}")
        return CONSTANTS[node.id]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.UAdd | ast.USub):
        operand = _compute(node.operand)
        return -operand if isinstance(node.op, ast.USub) else +operand
    if isinstance(node, ast.BinOp):
        left, right = _compute(node.left), _compute(node.right)
        if isinstance(node.op, ast.Pow):
            return _checked(_power(left, right))
        if type(node.op) in _BINARY:
            return _checked(_BINARY[type(node.op)](left, right))
    if isinstance(node, ast.Call):
        return _checked(_call(node))
    if isinstance(node, ast.Tuple):
        raise ToolError("a comma only separates a function's arguments: write 1234.5, not 1,234.5")
    raise ToolError(f"'{ast.unparse(node)}' is not allowed in an arithmetic expression; allowed: numbers, "
                    f"+ - * / // % ** and parentheses, {_ALLOWED}")


def _call(node: ast.Call) -> Number:
    if isinstance(node.func, ast.Constant):
        raise ToolError(f"'{ast.unparse(node)}' is not allowed; to multiply, write *")
    if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
        raise ToolError(f"unknown function '{ast.unparse(node.func)}'; allowed: {_ALLOWED}")
    name, function = node.func.id, FUNCTIONS[node.func.id]
    if node.keywords or any(isinstance(arg, ast.Starred) for arg in node.args):
        raise ToolError(f"{name} takes plain numbers as arguments")
    count = len(node.args)
    if count < function.min_args or (function.max_args is not None and count > function.max_args):
        wanted = (f"{function.min_args} or more" if function.max_args is None
                  else " or ".join(str(n) for n in range(function.min_args, function.max_args + 1)))
        raise ToolError(f"{name} takes {wanted} argument{'' if wanted == '1' else 's'}, not {count}")
    values = [_compute(arg) for arg in node.args]
    try:
        return function.call(*values)
    except ValueError:  # math's "math domain error"
        if name == "sqrt" and values[0] < 0:
            raise ToolError("the square root of a negative number is not a real number") from None
        shown = ", ".join(format_number(v) for v in values)
        raise ToolError(f"math domain error: {name}({shown}) is not defined") from None


def _power(base: Number, exponent: Number) -> Number:
    if isinstance(base, int) and isinstance(exponent, int) and exponent >= 0:
        # estimate the size first: 9**9**9 would take minutes and hundreds of megabytes
        if abs(base) > 1 and (exponent > _INT_LIMIT_BITS or exponent * math.log2(abs(base)) > _INT_LIMIT_BITS):
            raise ToolError(TOO_LARGE)
        return base**exponent
    if base < 0 and not float(exponent).is_integer():
        raise ToolError("a negative number to a fractional power is not a real number")
    return float(base) ** float(exponent)


def _checked(value: Number) -> Number:
    if isinstance(value, int):
        if abs(value) >= _INT_LIMIT:
            raise ToolError(TOO_LARGE)
        return value
    if isinstance(value, float):
        if math.isnan(value):
            raise ToolError("the result is not a number")
        if math.isinf(value):
            raise ToolError(TOO_LARGE)
        return value
    raise ToolError("the result is not a real number")


class CalculatorArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    expression: str = Field(
        max_length=MAX_EXPRESSION_CHARS,
        # What an expression can hold; as the grammar of a required call it keeps a small model
        # writing arithmetic instead of prose inside the string.
        # It starts as arithmetic can: a small model forced to open the string otherwise takes the
        # quote-and-dot token and writes ".5 * 5678" for 1234 × 5678.
        pattern=r"^[0-9A-Za-z_(+\-−][0-9A-Za-z_+\-*/%^().,! ×÷·−]*$",
        description="An arithmetic expression such as 2 + 3 * 4, (17.5 - 3) / 4, 2 ** 10, 15% * 80, sqrt(2) or "
        "log(8, 2); functions: " + ", ".join(FUNCTIONS) + "; constants: pi, e, tau.",
    )


class CalculatorTool(Tool):
    name: ClassVar[str] = "calculator"
    title: ClassVar[str] = "Calculator"
    description: ClassVar[str] = (
        "Works out an arithmetic expression exactly. Use it for any calculation with more than a step or two "
        "instead of doing it in your head."
    )
    Args: ClassVar[type[BaseModel]] = CalculatorArgs

    async def run(self, args: BaseModel) -> str:
        if not isinstance(args, CalculatorArgs):
            raise TypeError(f"expected CalculatorArgs, not {type(args).__name__}")
        return calculate(args.expression)
