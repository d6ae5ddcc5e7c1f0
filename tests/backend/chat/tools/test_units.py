"""Unit conversion: known values, the names people and models write, refusals, and round trips."""

from __future__ import annotations

import math
from itertools import product

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from backend.chat.tools.registry import ToolError
from backend.chat.tools.units import (
    CATEGORIES,
    UNITS,
    ConvertUnitsArgs,
    ConvertUnitsTool,
    Unit,
    convert,
    find_unit,
    format_value,
)


async def converted(value: float, from_unit: str, to_unit: str) -> str:
    return await ConvertUnitsTool().run(ConvertUnitsArgs(value=value, from_unit=from_unit, to_unit=to_unit))


@pytest.mark.parametrize(
    ("value", "from_unit", "to_unit", "answer"),
    [
        (5, "km", "mi", "5 km = 3.10686 mi"),
        (1, "mi", "ft", "1 mi = 5280 ft"),
        (1, "nmi", "m", "1 nmi = 1852 m"),
        (12, "in", "cm", "12 in = 30.48 cm"),
        (1, "lb", "kg", "1 lb = 0.453592 kg"),
        (1, "st", "lb", "1 st = 14 lb"),
        (16, "oz", "lb", "16 oz = 1 lb"),
        (1, "t", "kg", "1 t = 1000 kg"),
        (1, "gal", "l", "1 gal = 3.78541 l"),
        (1, "uk gal", "litres", "1 imp gal = 4.54609 l"),
        (1, "cup", "fl oz", "1 cup = 8 fl oz"),
        (1, "tbsp", "tsp", "1 tbsp = 3 tsp"),
        (1, "m3", "l", "1 m³ = 1000 l"),
        (1, "acre", "m2", "1 acre = 4046.86 m²"),
        (1, "ha", "acres", "1 ha = 2.47105 acre"),
        (1, "square feet", "square inches", "1 ft² = 144 in²"),
        (1, "mi²", "km^2", "1 mi² = 2.58999 km²"),
        (100, "km/h", "mph", "100 km/h = 62.1371 mph"),
        (10, "m/s", "km/h", "10 m/s = 36 km/h"),
        (1, "kn", "km/h", "1 kn = 1.852 km/h"),
        (1, "year", "days", "1 yr = 365.25 d"),
        (2, "weeks", "h", "2 wk = 336 h"),
        (1500, "ms", "min", "1500 ms = 0.025 min"),
        (1, "GiB", "MB", "1 GiB = 1073.74 MB"),
        (1, "MB", "Mb", "1 MB = 8 Mbit"),
        (100, "Mbit", "MB", "100 Mbit = 12.5 MB"),
        (1, "TB", "TiB", "1 TB = 0.909495 TiB"),
        (100, "C", "F", "100 °C = 212 °F"),
        (32, "°F", "degrees celsius", "32 °F = 0 °C"),
        (98.6, "fahrenheit", "celsius", "98.6 °F = 37 °C"),
        (0, "K", "°C", "0 K = -273.15 °C"),
        (-40, "C", "F", "-40 °C = -40 °F"),
        (1, "atm", "psi", "1 atm = 14.6959 psi"),
        (1, "bar", "kPa", "1 bar = 100 kPa"),
        (760, "mmHg", "atm", "760 mmHg = 1 atm"),
        (1013.25, "hPa", "atm", "1013.25 hPa = 1 atm"),
        (1, "kWh", "kJ", "1 kWh = 3600 kJ"),
        (1, "kcal", "kJ", "1 kcal = 4.184 kJ"),
        (1, "Cal", "cal", "1 kcal = 1000 cal"),
        (1, "mm", "km", "1 mm = 0.000001 km"),
        (1e-12, "mm", "km", "1e-12 mm = 1e-18 km"),
        (1e300, "km", "mm", "1e+300 km = 1e+306 mm"),
        (1234567.89, "m", "m", "1234567.89 m = 1234568 m"),
        (0.5, "kilometers", "miles", "0.5 km = 0.310686 mi"),
    ],
)
async def test_conversions(value: float, from_unit: str, to_unit: str, answer: str) -> None:
    assert await converted(value, from_unit, to_unit) == answer


@pytest.mark.parametrize(
    ("name", "symbol"),
    [
        ("kilometers", "km"), ("Kilometres", "km"), ("miles", "mi"), ("feet", "ft"), ("foot", "ft"),
        ("inches", "in"), ('in.', "in"), ("nautical miles", "nmi"), ("pounds", "lb"), ("lbs", "lb"),
        ("ounces", "oz"), ("grams", "g"), ("kilos", "kg"), ("tonnes", "t"), ("short tons", "short ton"),
        ("litres", "l"), ("liters", "l"), ("L", "l"), ("mL", "ml"), ("cc", "ml"), ("cm³", "ml"),
        ("fl. oz.", "fl oz"), ("fluid ounces", "fl oz"), ("tablespoons", "tbsp"), ("US gallons", "gal"),
        ("imperial gallons", "imp gal"), ("UK pints", "imp pt"), ("cubic meters", "m³"),
        ("sq ft", "ft²"), ("sqft", "ft²"), ("ft^2", "ft²"), ("square kilometres", "km²"), ("hectares", "ha"),
        ("miles per hour", "mph"), ("kilometres per hour", "km/h"), ("KPH", "km/h"), ("knots", "kn"),
        ("feet per second", "ft/s"), ("seconds", "s"), ("mins", "min"), ("hours", "h"), ("hrs", "h"),
        ("days", "d"), ("years", "yr"), ("bytes", "B"), ("bits", "bit"), ("megabytes", "MB"), ("gigabits", "Gbit"),
        ("kib", "KiB"), ("°C", "°C"), ("ºF", "°F"), ("degrees Fahrenheit", "°F"), ("deg C", "°C"),
        ("Kelvin", "K"), ("k", "K"), ("pascals", "Pa"), ("millibars", "hPa"), ("atmospheres", "atm"),
        ("PSI", "psi"), ("mm Hg", "mmHg"), ("joules", "J"), ("calories", "cal"), ("kilocalories", "kcal"),
        ("kilowatt-hours", "kWh"), ("KWH", "kWh"), ("watt hours", "Wh"),
    ],
)
def test_names(name: str, symbol: str) -> None:
    unit = find_unit(name)
    assert unit is not None and unit.symbol == symbol


@pytest.mark.parametrize(
    ("name", "symbol"),
    [
        # case carries the meaning for bits and bytes, and for the food calorie
        ("b", "bit"), ("B", "B"), ("Kb", "kbit"), ("Mb", "Mbit"), ("Gb", "Gbit"), ("Tb", "Tbit"),
        ("kb", "kB"), ("kB", "kB"), ("KB", "kB"), ("mb", "MB"), ("MB", "MB"), ("gb", "GB"), ("Cal", "kcal"),
        ("cal", "cal"),
    ],
)
def test_case_where_it_matters(name: str, symbol: str) -> None:
    unit = find_unit(name)
    assert unit is not None and unit.symbol == symbol


def test_every_symbol_and_name_finds_its_unit() -> None:
    for unit in UNITS:
        for name in (unit.symbol, *unit.names):
            assert find_unit(name) is unit, name
    assert CATEGORIES == ("length", "mass", "volume", "area", "speed", "time", "data", "temperature", "pressure",
                          "energy")


@pytest.mark.parametrize(
    ("value", "from_unit", "to_unit", "sentence"),
    [
        (1, "kg", "km", "cannot convert kg to km (mass to length)"),
        (1, "oz", "ml", "cannot convert oz to ml (mass to volume)"),
        (1, "°C", "kWh", "cannot convert °C to kWh (temperature to energy)"),
        (1, "furlong", "km", "unknown unit 'furlong'; length units are mm, cm, m, km, in, ft, yd, mi, nmi"),
        (1, "kg", "grain", "unknown unit 'grain'; mass units are mg, g, kg, t, oz, lb, st, short ton, long ton"),
        (1, "foo", "bar_", "unknown unit 'foo'; known units include km, kg, l, m², km/h, h, MB, °C, bar and kWh"),
        (1, "tons", "kg", "'tons' is ambiguous; use t (a metric tonne), short ton or long ton"),
        (-300, "C", "K", "-300 °C is below absolute zero (-273.15 °C)"),
        (-1, "K", "C", "-1 K is below absolute zero (0 K)"),
        (-460, "F", "C", "-460 °F is below absolute zero (-459.67 °F)"),
        (1e308, "km", "mm", "the result is too large"),
        (math.inf, "km", "m", "the value must be a finite number"),
    ],
)
def test_refusals(value: float, from_unit: str, to_unit: str, sentence: str) -> None:
    with pytest.raises(ToolError) as refused:
        convert(value, from_unit, to_unit)
    assert str(refused.value) == sentence


def test_absolute_zero_itself_converts() -> None:
    assert convert(-459.67, "F", "K")[0] == 0
    assert convert(-273.15, "C", "F")[0] == -459.67


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (3.106855961, "3.10686"), (0, "0"), (-0.0, "0"), (1e-6, "0.000001"), (0.000123456789, "0.000123457"),
        (1234567.89, "1234568"), (1e20, "1e+20"), (-273.15, "-273.15"), (212.00000000000003, "212"),
        (1e-12, "1e-12"), (999999.7, "1000000"), (12345.678, "12345.7"), (0.1, "0.1"),
    ],
)
def test_format_value(value: float, text: str) -> None:
    assert format_value(value) == text


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_format_value_keeps_six_significant_digits_and_never_shows_zero_for_a_number(x: float) -> None:
    text = format_value(x)
    assert math.isclose(float(text), x, rel_tol=5e-6)
    assert (float(text) == 0) == (x == 0)


def _pairs() -> list[tuple[Unit, Unit]]:
    return [(a, b) for a, b in product(UNITS, UNITS) if a.category == b.category]


_values = st.one_of(
    st.just(0.0), st.floats(min_value=1e-6, max_value=1e12), st.floats(min_value=-1e12, max_value=-1e-6)
)


@given(st.sampled_from(_pairs()), _values)
def test_conversions_go_back_where_they_came_from(pair: tuple[Unit, Unit], value: float) -> None:
    a, b = pair
    assume(a.category != "temperature" or a.to_base(value) >= 0)
    there = convert(value, a.symbol, b.symbol)[0]
    back = convert(there, b.symbol, a.symbol)[0]
    assert math.isclose(back, value, rel_tol=1e-12, abs_tol=1e-9)


@given(st.sampled_from(CATEGORIES), st.data(), _values)
def test_going_through_a_third_unit_changes_nothing(category: str, data: st.DataObject, value: float) -> None:
    units = [u for u in UNITS if u.category == category]
    a, b, c = (data.draw(st.sampled_from(units)) for _ in range(3))
    assume(category != "temperature" or a.to_base(value) >= 0)
    direct = convert(value, a.symbol, c.symbol)[0]
    via = convert(convert(value, a.symbol, b.symbol)[0], b.symbol, c.symbol)[0]
    assert math.isclose(direct, via, rel_tol=1e-12, abs_tol=1e-9)


def test_arguments() -> None:
    with pytest.raises(ValueError, match="finite"):
        ConvertUnitsArgs(value=math.nan, from_unit="m", to_unit="km")
    with pytest.raises(ValueError, match="Extra inputs"):
        ConvertUnitsArgs.model_validate({"value": 1, "from_unit": "m", "to_unit": "km", "precision": 3})
