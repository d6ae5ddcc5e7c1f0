"""The convert_units tool: lengths, masses, volumes, areas, speeds, times, data sizes, temperatures,
pressures and energies, by symbol or by name ("km", "kilometres", "°F", "fl oz", "square feet").

Names are read case-insensitively, with plurals, dots, "°", "^" and a leading "degrees" forgiven,
except the few symbols whose case carries the meaning (`_EXACT`): "b" is a bit and "B" a byte, and
"Kb", "Mb", "Gb", "Tb" are bits, as network speeds are written; every other spelling ("kb", "mb",
"MB", "gb") is bytes, as people write file sizes. "Cal" with a capital is the food calorie, a
kilocalorie.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from .calculator import format_number
from .registry import Tool, ToolError

__all__ = ["CATEGORIES", "UNITS", "ConvertUnitsTool", "Unit", "convert", "find_unit", "format_value"]


def _exact(number: float | Fraction) -> Fraction:
    """The number as written (its shortest decimal form): 0.0254 is 254/10000, not the float nearest to it."""
    return number if isinstance(number, Fraction) else Fraction(str(number))


@dataclass(frozen=True, slots=True)
class Unit:
    symbol: str  # as results show it
    category: str
    # Exact fractions, so that 32 °F is 0 °C and not 5.7e-14: one unit in the category's base unit
    # (m, kg, l, m², m/s, s, byte, K, Pa, J) ...
    factor: Fraction
    shift: Fraction = Fraction(0)  # ... after adding this (temperatures): base = (value + shift) * factor
    names: tuple[str, ...] = ()  # other spellings, lower case, singular

    def to_base(self, value: float | Fraction) -> Fraction:
        return (_exact(value) + self.shift) * self.factor

    def from_base(self, value: Fraction) -> Fraction:
        return value / self.factor - self.shift


def _units(category: str, rows: list[tuple[str, float | Fraction, str]]) -> list[Unit]:
    """Rows of symbol, factor and other names separated by commas."""
    return [Unit(s, category, _exact(f), names=tuple(n.strip() for n in names.split(",") if n.strip()))
            for s, f, names in rows]


_LENGTH = _units("length", [
    ("mm", 0.001, "millimetre, millimeter"), ("cm", 0.01, "centimetre, centimeter"), ("m", 1, "metre, meter"),
    ("km", 1000, "kilometre, kilometer"), ("in", 0.0254, "inch"), ("ft", 0.3048, "foot, feet"),
    ("yd", 0.9144, "yard"), ("mi", 1609.344, "mile, statute mile"), ("nmi", 1852, "nautical mile"),
])


def _square(unit: Unit) -> Unit:
    s = unit.symbol
    names = (f"{s}2", f"sq {s}", f"sq{s}", *(f"{p} {n}" for n in unit.names for p in ("square", "sq")))
    return Unit(f"{s}²", "area", unit.factor**2, names=names)


_SQUARED = {u.symbol: _square(u) for u in _LENGTH}

UNITS: tuple[Unit, ...] = (
    *_LENGTH,
    *_units("mass", [
        ("mg", 1e-6, "milligram, milligramme"), ("g", 0.001, "gram, gramme"), ("kg", 1, "kilogram, kilogramme, kilo"),
        ("t", 1000, "tonne, metric ton, metric tonne"), ("oz", 0.028349523125, "ounce"),
        ("lb", 0.45359237, "pound, lbs"), ("st", 6.35029318, "stone"),
        ("short ton", 907.18474, "us ton"), ("long ton", 1016.0469088, "uk ton, imperial ton"),
    ]),
    # US customary measures (NIST Handbook 44), and the imperial gallon and pint by name
    *_units("volume", [
        ("ml", 0.001, "millilitre, milliliter, cc, cm3, cubic centimetre, cubic centimeter"),
        ("cl", 0.01, "centilitre, centiliter"), ("dl", 0.1, "decilitre, deciliter"), ("l", 1, "litre, liter, ltr"),
        ("m³", 1000, "m3, cubic metre, cubic meter"), ("tsp", 0.00492892159375, "teaspoon"),
        ("tbsp", 0.01478676478125, "tablespoon"), ("cup", 0.2365882365, "us cup"),
        ("fl oz", 0.0295735295625, "floz, fluid ounce, us fl oz"), ("pt", 0.473176473, "pint, us pint, us pt"),
        ("qt", 0.946352946, "quart, us quart, us qt"), ("gal", 3.785411784, "gallon, us gallon, us gal"),
        ("imp gal", 4.54609, "imperial gallon, uk gallon, uk gal"),
        ("imp pt", 0.56826125, "imperial pint, uk pint, uk pt"),
    ]),
    *(_SQUARED[s] for s in ("mm", "cm", "m")),
    *_units("area", [("ha", 1e4, "hectare")]),
    _SQUARED["km"], *(_SQUARED[s] for s in ("in", "ft", "yd")),
    *_units("area", [("acre", 4046.8564224, "ac")]),
    _SQUARED["mi"],
    *_units("speed", [
        ("m/s", 1, "metre per second, meter per second, mps"),
        ("km/h", Fraction(1000, 3600), "kph, kmh, kmph, km per hour, kilometre per hour, kilometer per hour"),
        ("mph", 0.44704, "mi/h, mile per hour"), ("kn", Fraction(1852, 3600), "knot, kt"),
        ("ft/s", 0.3048, "fps, foot per second, feet per second"),
    ]),
    *_units("time", [
        ("ms", 0.001, "millisecond, msec"), ("s", 1, "second, sec"), ("min", 60, "minute"), ("h", 3600, "hour, hr"),
        ("d", 86400, "day"), ("wk", 604800, "week"),
        ("yr", 31557600, "year"),  # the Julian year, 365.25 days, as astronomy uses
    ]),
    *_units("data", [
        ("bit", 0.125, ""), ("B", 1, "byte"), ("kB", 1e3, "kilobyte"), ("MB", 1e6, "megabyte"),
        ("GB", 1e9, "gigabyte"), ("TB", 1e12, "terabyte"), ("KiB", 2**10, "kibibyte"), ("MiB", 2**20, "mebibyte"),
        ("GiB", 2**30, "gibibyte"), ("TiB", 2**40, "tebibyte"), ("kbit", 125, "kilobit"),
        ("Mbit", 125e3, "megabit"), ("Gbit", 125e6, "gigabit"), ("Tbit", 125e9, "terabit"),
    ]),
    Unit("°C", "temperature", Fraction(1), Fraction("273.15"), ("c", "celsius", "centigrade", "degc")),
    Unit("°F", "temperature", Fraction(5, 9), Fraction("459.67"), ("f", "fahrenheit", "degf")),
    Unit("K", "temperature", Fraction(1), Fraction(0), ("kelvin",)),
    *_units("pressure", [
        ("Pa", 1, "pascal"), ("hPa", 100, "hectopascal, mbar, millibar"), ("kPa", 1000, "kilopascal"),
        ("bar", 1e5, ""), ("atm", 101325, "atmosphere"),
        # pound-force per square inch: a pound times standard gravity over a square inch
        ("psi", Fraction("0.45359237") * Fraction("9.80665") / Fraction("0.0254") ** 2, "pound per square inch"),
        ("mmHg", 133.322387415, "mm hg, millimetre of mercury, millimeter of mercury"),
    ]),
    *_units("energy", [
        ("J", 1, "joule"), ("kJ", 1000, "kilojoule"),
        ("cal", 4.184, "calorie"), ("kcal", 4184, "kilocalorie"),  # the thermochemical calorie
        ("Wh", 3600, "watt hour"), ("kWh", 3.6e6, "kilowatt hour"),
    ]),
)

CATEGORIES: tuple[str, ...] = tuple(dict.fromkeys(u.category for u in UNITS))

_BY_SYMBOL = {u.symbol: u for u in UNITS}
# where case carries the meaning; looked up before the case-insensitive names
_EXACT = {"b": _BY_SYMBOL["bit"], "B": _BY_SYMBOL["B"], "Cal": _BY_SYMBOL["kcal"],
          **{f"{p}b": _BY_SYMBOL[f"{p.replace('K', 'k')}bit"] for p in ("K", "M", "G", "T")}}
_AMBIGUOUS = {"ton": "t (a metric tonne), short ton or long ton"}


def _key(name: str) -> str:
    text = name.lower().replace("°", "").replace("º", "").replace("^", "").replace(".", " ").replace("-", " ")
    text = " ".join(text.replace("²", "2").replace("³", "3").split())
    for prefix in ("degrees ", "degree ", "deg "):
        text = text.removeprefix(prefix)
    return text


def _build_names() -> dict[str, Unit]:
    names: dict[str, Unit] = {}
    for unit in UNITS:
        for name in {_key(unit.symbol), *(_key(n) for n in unit.names)} - {"b"}:  # "b", "B": only in _EXACT
            if names.setdefault(name, unit) is not unit:
                raise AssertionError(f"the unit name {name!r} is taken twice")  # a mistake in the table above
    return names


_NAMES = _build_names()


def _singulars(key: str) -> list[str]:
    """`key` with its plural words made singular, in the two ways English does: miles, inches."""
    words = key.split()
    plain = [w[:-1] if len(w) > 2 and w.endswith("s") else w for w in words]
    es = [w[:-2] if len(w) > 3 and w.endswith("es") else p for w, p in zip(words, plain, strict=True)]
    return [" ".join(plain), " ".join(es)]


def find_unit(name: str) -> Unit | None:
    """The unit a symbol or name means, or None."""
    if (unit := _EXACT.get(name.strip())) is not None:
        return unit
    key = _key(name)
    for candidate in (key, *_singulars(key)):
        if (unit := _NAMES.get(candidate)) is not None:
            return unit
    return None


def _unit(name: str, other: str) -> Unit:
    unit = find_unit(name)
    if unit is not None:
        return unit
    key = _key(name)
    for candidate in (key, *_singulars(key)):
        if candidate in _AMBIGUOUS:
            raise ToolError(f"'{name}' is ambiguous; use {_AMBIGUOUS[candidate]}")
    known = find_unit(other)
    if known is not None:
        some = ", ".join(u.symbol for u in UNITS if u.category == known.category)
        raise ToolError(f"unknown unit '{name}'; {known.category} units are {some}")
    raise ToolError(f"unknown unit '{name}'; known units include km, kg, l, m², km/h, h, MB, °C, bar and kWh")


def convert(value: float, from_unit: str, to_unit: str) -> tuple[float, Unit, Unit]:
    """`value` in `from_unit` expressed in `to_unit`, with the two units found; ToolError if it cannot be."""
    source, target = _unit(from_unit, to_unit), _unit(to_unit, from_unit)
    if source.category != target.category:
        raise ToolError(f"cannot convert {source.symbol} to {target.symbol} ({source.category} to {target.category})")
    if not math.isfinite(value):
        raise ToolError("the value must be a finite number")
    base = source.to_base(value)
    if source.category == "temperature" and base < 0:
        raise ToolError(f"{format_number(value)} {source.symbol} is below absolute zero "
                        f"({format_value(float(source.from_base(Fraction(0))))} {source.symbol})")
    try:
        result = float(target.from_base(base))
    except OverflowError:
        raise ToolError("the result is too large") from None
    return result, source, target


def format_value(value: float) -> str:
    """Six significant digits, as many decimals as it takes to show them, scientific beyond 10**15 and 10**-9."""
    if value == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(value)))
    if magnitude >= 15 or magnitude < -9:
        return f"{value:.6g}"
    text = f"{value:.{max(0, 5 - magnitude)}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


_ONE_UNIT = r'^[^,;"\\\x00-\x1f]+$'
"""One unit, not a list: as the grammar of a required call it stops a small model at the first
comma of the examples it copies from the description. (A pattern is the string's content in the
grammar, so it leaves out the quote, the backslash and control characters, which would let the
string run past its end.)"""


class ConvertUnitsArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: float = Field(allow_inf_nan=False, description="The amount to convert, e.g. 5.")
    from_unit: str = Field(max_length=40, pattern=_ONE_UNIT, description="The unit it is in: a symbol or a "
                           "name, e.g. km, lb, °F, fl oz, km/h, MiB.")
    to_unit: str = Field(max_length=40, pattern=_ONE_UNIT, description="The unit wanted, of the same kind, e.g. "
                         "mi, kg, °C, ml, mph, MB.")


class ConvertUnitsTool(Tool):
    name: ClassVar[str] = "convert_units"
    title: ClassVar[str] = "Unit converter"
    description: ClassVar[str] = (
        "Converts an amount between units of length, mass, volume, area, speed, time, data size, temperature, "
        "pressure or energy. Use it instead of converting from memory."
    )
    Args: ClassVar[type[BaseModel]] = ConvertUnitsArgs

    async def run(self, args: BaseModel) -> str:
        if not isinstance(args, ConvertUnitsArgs):
            raise TypeError(f"expected ConvertUnitsArgs, not {type(args).__name__}")
        result, source, target = convert(args.value, args.from_unit, args.to_unit)
        return f"{format_number(args.value)} {source.symbol} = {format_value(result)} {target.symbol}"
