"""The calculator: exact answers, and for anything else a ToolError with a sentence, quickly."""

from __future__ import annotations

import math
import operator
import time
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backend.chat.tools.calculator import (
    FUNCTIONS,
    MAX_EXPRESSION_CHARS,
    CalculatorArgs,
    CalculatorTool,
    calculate,
    evaluate,
    format_number,
)
from backend.chat.tools.registry import ToolError

# CPU time, far above what any expression here takes (under 2 ms each): a hang or a huge number blows it.
QUICK_S = 0.5


@pytest.mark.parametrize(
    ("expression", "answer"),
    [
        ("2+3*4", "2 + 3 * 4 = 14"),
        ("(17.5 - 3) / 4", "(17.5 - 3) / 4 = 3.625"),
        ("sqrt(2)", "sqrt(2) = 1.41421356237"),
        ("2^10", "2 ** 10 = 1024"),
        ("6 × 7 · 2", "6 * 7 * 2 = 84"),
        ("7 ÷ 2", "7 / 2 = 3.5"),
        ("5 − 7", "5 - 7 = -2"),
        ("15% * 80", "15 / 100 * 80 = 12"),
        ("200 + 10%", "200 + 10 / 100 = 200.1"),
        ("12.5%", "12.5 / 100 = 0.125"),
        ("10 % 3", "10 % 3 = 1"),
        ("10%3", "10 % 3 = 1"),
        ("-7 // 2", "-7 // 2 = -4"),
        ("-2**2", "-2 ** 2 = -4"),
        ("2**-2", "2 ** (-2) = 0.25"),
        ("(-8) ** 3.0", "(-8) ** 3.0 = -512"),
        ("1/3", "1 / 3 = 0.333333333333"),
        ("0.1 + 0.2", "0.1 + 0.2 = 0.3"),
        ("2/3*1e20", "2 / 3 * 1e+20 = 6.66666666667e+19"),
        ("1e3", "1000.0 = 1000"),
        ("2**100", "2 ** 100 = 1267650600228229401496703205376"),
        ("2**199", f"2 ** 199 = {2**199}"),  # 60 digits: still exact
        ("2**200", "2 ** 200 = 1.60693804425899e+60"),
        ("factorial(20)", "factorial(20) = 2432902008176640000"),
        ("factorial(5.0)", "factorial(5.0) = 120"),
        ("factorial(1000)", "factorial(1000) = 4.02387260077094e+2567"),
        ("log(8, 2)", "log(8, 2) = 3"),
        ("ln(e)", "ln(e) = 1"),
        ("log(100)", "log(100) = 4.60517018599"),
        ("log10(1000) + log2(1024)", "log10(1000) + log2(1024) = 13"),
        ("round(2.567, 2)", "round(2.567, 2) = 2.57"),
        ("round(2.5)", "round(2.5) = 2"),
        ("round(1234, -2)", "round(1234, -2) = 1200"),
        ("gcd(12, 18, 27)", "gcd(12, 18, 27) = 3"),
        ("lcm(4, 6, 10)", "lcm(4, 6, 10) = 60"),
        ("min(3, 1.5, 2)", "min(3, 1.5, 2) = 1.5"),
        ("max(3, -1)", "max(3, -1) = 3"),
        ("hypot(3, 4)", "hypot(3, 4) = 5"),
        ("atan2(1, 1) * 4", "atan2(1, 1) * 4 = 3.14159265359"),
        ("degrees(pi) + radians(180)", "degrees(pi) + radians(180) = 183.141592654"),
        ("sin(pi/6)", "sin(pi / 6) = 0.5"),
        ("cos(0) + tan(0) + asin(1) + acos(1)", "cos(0) + tan(0) + asin(1) + acos(1) = 2.57079632679"),
        ("sinh(0) + cosh(0) + tanh(0)", "sinh(0) + cosh(0) + tanh(0) = 1"),
        ("cbrt(-27)", "cbrt(-27) = -3"),
        ("floor(-2.5) + ceil(2.1) + abs(-4)", "floor(-2.5) + ceil(2.1) + abs(-4) = 4"),
        ("exp(1) - e", "exp(1) - e = 0"),
        ("tau / pi", "tau / pi = 2"),
        ("1_000_000 * 3", "1000000 * 3 = 3000000"),
        ("  ((2)) ", "2 = 2"),
    ],
)
def test_answers(expression: str, answer: str) -> None:
    assert calculate(expression) == answer


@pytest.mark.parametrize(
    ("expression", "sentence"),
    [
        ("1/0", "division by zero"),
        ("5 // 0.0", "division by zero"),
        ("0 ** -1", "division by zero"),
        ("sqrt(-1)", "the square root of a negative number is not a real number"),
        ("log(0)", "math domain error: log(0) is not defined"),
        ("ln(-2.5)", "math domain error: ln(-2.5) is not defined"),
        ("acos(2)", "math domain error: acos(2) is not defined"),
        ("(-8) ** (1/3)", "a negative number to a fractional power is not a real number"),
        ("9**9**9", "the result is too large"),
        ("10**3000", "the result is too large"),
        ("factorial(1000) ** 2", "the result is too large"),
        ("10**2999 * 10", "the result is too large"),
        ("1e308 * 10", "the result is too large"),
        ("1e999", "the result is too large"),
        ("exp(1000)", "the result is too large"),
        ("2.0 ** 5000", "the result is too large"),
        ("factorial(1001)", "factorial needs a whole number from 0 to 1000, not 1001"),
        ("factorial(-1)", "factorial needs a whole number from 0 to 1000, not -1"),
        ("factorial(2.5)", "factorial needs a whole number from 0 to 1000, not 2.5"),
        ("gcd(2.5, 5)", "gcd needs whole numbers, not 2.5"),
        ("round(2, 1000)", "round's number of places must be from -400 to 400"),
        ("foo + 1", "unknown name 'foo'; allowed: the constants pi, e, tau and the functions sqrt, cbrt"),
        ("bar(2)", "unknown function 'bar'; allowed: the constants pi, e, tau"),
        ("__import__('os')", "unknown function '__import__'"),
        ("math.sqrt(4)", "unknown function 'math.sqrt'"),
        ("2(3)", "'2(3)' is not allowed; to multiply, write *"),
        ("sqrt(1, 2)", "sqrt takes 1 argument, not 2"),
        ("atan2(1)", "atan2 takes 2 arguments, not 1"),
        ("round(1, 2, 3)", "round takes 1 or 2 arguments, not 3"),
        ("max()", "max takes 1 or more arguments, not 0"),
        ("sqrt(x=4)", "sqrt takes plain numbers as arguments"),
        ("'a' * 3", "'a' is not a number this calculator works with"),
        ("1j", "1j is not a number this calculator works with"),
        ("True + 1", "True is not a number this calculator works with"),
        ("1,234.5", "a comma only separates a function's arguments"),
        ("(1).real", "is not allowed in an arithmetic expression"),
        ("[1, 2]", "is not allowed in an arithmetic expression"),
        ("1 < 2", "is not allowed in an arithmetic expression"),
        ("lambda: 1", "is not allowed in an arithmetic expression"),
        ("2 **", "that is not an arithmetic expression: invalid syntax"),
        ("1\x00", "that is not an arithmetic expression"),
        ("(" * 300 + "1" + ")" * 199, "that is not an arithmetic expression: too many nested parentheses"),
        ("", "the expression is empty"),
        ("   ", "the expression is empty"),
        ("1" * (MAX_EXPRESSION_CHARS + 1), "the expression is too long (501 characters; at most 500)"),
    ],
)
def test_refusals(expression: str, sentence: str) -> None:
    with pytest.raises(ToolError) as refused:
        calculate(expression)
    assert sentence in str(refused.value)


def test_node_limit_is_200() -> None:
    # n ones added up are 2n - 1 nodes
    assert calculate("+".join(["1"] * 100)).endswith(" = 100")
    with pytest.raises(ToolError, match=r"too complicated \(201 parts; at most 200\)"):
        calculate("+".join(["1"] * 101))


def test_longest_expression_is_allowed() -> None:
    shown, value = evaluate("9" * MAX_EXPRESSION_CHARS)
    assert shown == "9" * MAX_EXPRESSION_CHARS and value == 10**MAX_EXPRESSION_CHARS - 1


@pytest.mark.parametrize(
    "expression",
    [
        "9**9**9**9",
        "2**9965 - 1",
        "(10**1500)**2",
        "factorial(1000) * factorial(999) * 3",
        "lcm(" + ", ".join(str(10**2999 - k) for k in range(1, 4)) + ")",
        "gcd(factorial(1000), factorial(999)) + 1",
        "round(10**2999, -400) // 7",
        "-(10**2999) % 7 + 10**2999 / 3",
        "1 ** (10**2999)",
        "sqrt(10**2999)",
        "hypot(10**2999, 1)",
        "0.5 ** (10**400)",
        "-" * 199 + "1",
    ],
)
def test_hard_cases_are_quick(expression: str) -> None:
    start = time.thread_time()
    try:
        calculate(expression)
    except ToolError:
        pass
    assert time.thread_time() - start < QUICK_S


_TOKENS = [
    *"0123456789", "1e308", "9" * 40, ".", "+", "-", "*", "/", "//", "%", "**", "^", "×", "÷", "(", ")", ",", " ",
    "pi", "e", "tau", "j", "x", "=", "'", "_", "<", "[", "]", "lambda", "if", ":", *FUNCTIONS,
]


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.lists(st.sampled_from(_TOKENS), max_size=80).map("".join), st.text(max_size=600)))
def test_random_text_gets_an_answer_or_a_tool_error_quickly(expression: str) -> None:
    start = time.thread_time()
    try:
        answer = calculate(expression)
    except ToolError as refused:
        assert str(refused)
    else:
        assert " = " in answer
    assert time.thread_time() - start < QUICK_S


def _operand(text: str) -> str:
    return f"({text})" if text.startswith("-") else text


_leaves = st.one_of(
    st.integers(min_value=-(10**40), max_value=10**40).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from(["pi", "e", "tau", "0", "1", "2", "1000"]),
).map(_operand)


def _bigger(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(children, st.sampled_from(["+", "-", "*", "/", "//", "%", "**"]), children).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"
        ),
        st.tuples(st.sampled_from(sorted(FUNCTIONS)), st.lists(children, min_size=1, max_size=3)).map(
            lambda t: f"{t[0]}({', '.join(t[1])})"
        ),
        children.map(lambda c: f"-{c}"),
    )


@settings(max_examples=400, deadline=None)
@given(st.recursive(_leaves, _bigger, max_leaves=30))
def test_random_expressions_get_a_finite_answer_or_a_tool_error_quickly(expression: str) -> None:
    start = time.thread_time()
    try:
        _, value = evaluate(expression)
    except ToolError as refused:
        assert str(refused)
    else:
        assert type(value) in (int, float)
        assert (isinstance(value, int) or math.isfinite(value)) and abs(value) < 10**3000
    assert time.thread_time() - start < QUICK_S


_OPERATORS = {"+": operator.add, "-": operator.sub, "*": operator.mul, "//": operator.floordiv, "%": operator.mod}


@given(
    st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from(sorted(_OPERATORS)),
    st.integers(min_value=-(10**30), max_value=10**30).filter(bool),
)
def test_integer_arithmetic_is_exact(a: int, op: str, b: int) -> None:
    assert evaluate(f"{a} {op} ({b})")[1] == _OPERATORS[op](a, b)


@given(st.integers(min_value=-1000, max_value=1000), st.integers(min_value=0, max_value=300))
def test_integer_powers_are_exact(base: int, exponent: int) -> None:
    assert evaluate(f"({base}) ^ {exponent}")[1] == base**exponent


@given(st.floats(min_value=0, max_value=1e300))
def test_square_roots_match_math(x: float) -> None:
    assert evaluate(f"sqrt({x!r})")[1] == math.sqrt(x)


@given(st.integers(min_value=-(10**2999), max_value=10**2999))
def test_ints_are_written_exactly_up_to_60_digits_then_to_15(n: int) -> None:
    text = format_number(n)
    if abs(n) < 10**60:
        assert int(text) == n
    else:
        assert "e+" in text
        assert abs(Decimal(text) - n) <= abs(n) * Decimal("5e-15")
        digits = text.split("e")[0].lstrip("-").replace(".", "")
        assert len(digits) <= 15


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_floats_are_written_with_12_significant_digits(x: float) -> None:
    text = format_number(x)
    assert math.isclose(float(text), x, rel_tol=1e-11)
    if x.is_integer() and abs(x) < 1e15:
        assert text == str(int(x))


async def test_the_tool() -> None:
    tool = CalculatorTool()
    assert await tool.run(CalculatorArgs(expression="2 + 2")) == "2 + 2 = 4"
    assert tool.name == "calculator" and tool.title == "Calculator"
    with pytest.raises(ToolError, match="division by zero"):
        await tool.run(CalculatorArgs(expression="1 / 0"))
