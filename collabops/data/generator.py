"""Example data: hourly occupancy of a parking operator's car parks.

A deterministic, seeded stand-in for the industry partner's real export, so
that the whole loop runs on a fresh clone. It is built to have the structure
real occupancy has, so models and drift monitors have something to find:
daily and weekly seasonality that differs by kind of car park, Swedish public
holidays, weather (temperature, rain), events near arenas, price changes with
a price elasticity, missing sensor readings, and two personal columns
(licence plate, customer id). ``drift=True`` produces a later period whose
distribution really changes: a price rise, a drop in commuter demand, a
shifted peak and warmer weather.

Times are the car parks' local wall clock, Europe/Stockholm (the parking
contract's ``time_zone``): hourly times that exist there, generated with
``pd.date_range(..., tz=zone)``, so the spring night has 23 hours and the
autumn night 25, with both 02:00 hours. The time column is aware
(``datetime64[ns, Europe/Stockholm]``); calendar effects (hour of day,
weekday, holidays) follow local wall time.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

KINDS = (
    "city_centre",
    "residential",
    "airport",
    "event_arena",
    "hospital",
    "shopping_mall",
    "train_station",
    "university_campus",
)
# Capacity range and base tariff (SEK/hour) per kind.
_CAPACITY = {
    "city_centre": (250, 900),
    "residential": (60, 250),
    "airport": (1500, 5000),
    "event_arena": (800, 2500),
    "hospital": (300, 1200),
    "shopping_mall": (600, 2000),
    "train_station": (200, 800),
    "university_campus": (300, 1000),
}
_PRICE = {
    "city_centre": 30.0,
    "residential": 10.0,
    "airport": 45.0,
    "event_arena": 25.0,
    "hospital": 20.0,
    "shopping_mall": 12.0,
    "train_station": 18.0,
    "university_campus": 15.0,
}
_PLATE_LETTERS = np.array(list("ABCDEFGHJKLMNOPRSTUWXYZ"))
DEFAULT_START = "2024-01-01"
DEFAULT_DRIFT_START = "2025-01-01"
TIME_ZONE = "Europe/Stockholm"
"""The clock of the generated times (the parking contract's ``time_zone``)."""
HOURS_PER_YEAR = 8760
"""The span over which a car park's one or two yearly price changes fall (see ``_prices``)."""
MAX_ROWS = 20_000_000
"""Most rows (car parks x hours) one call may generate: beyond it the frame would not fit in memory."""
MAX_SEED = 2 ** 32 - 1
"""Seeds are whole numbers from 0 to this (the range numpy's generators take without surprise)."""


class GeneratorError(ValueError):
    """Settings the generator refuses: ``setting`` names the field (``months``, ``seed``, ``start``, ``car_parks``,
    ``time_zone``), ``problem`` says what is wrong with it; the message is ``generator.<setting> <problem>``."""

    def __init__(self, setting: str, problem: str, text: str | None = None) -> None:
        super().__init__(text or f"generator.{setting} {problem}")
        self.setting, self.problem = setting, problem


@dataclass(frozen=True)
class GeneratorSettings:
    """What to generate; the defaults are the project's default dataset.

    Checked when built (:class:`GeneratorError`, a ``ValueError`` naming the
    setting): ``months`` and ``car_parks`` whole numbers of at least 1,
    ``seed`` a whole number from 0 to :data:`MAX_SEED`, ``start`` a date
    ``YYYY-MM-DD`` such that every generated hour lies in the years the
    contract's rules accept (up to 2261), at most :data:`MAX_ROWS` rows,
    ``time_zone`` an IANA name.
    """

    months: int = 12
    seed: int = 7
    start: str | None = None
    car_parks: int = 20
    drift: bool = False
    time_zone: str = TIME_ZONE

    def __post_init__(self) -> None:
        from collabops.data.rules import FIRST_YEAR, LAST_YEAR, check_time_zone

        for name in ("months", "car_parks", "seed"):
            value = getattr(self, name)
            if type(value) is not int:
                raise GeneratorError(name, f"must be a whole number, not {value!r}")
        if self.months < 1 or self.car_parks < 1:
            raise GeneratorError("months" if self.months < 1 else "car_parks", "must be at least 1",
                                 f"generator: months and car_parks must be at least 1 (got {self.months} and "
                                 f"{self.car_parks})")
        if not 0 <= self.seed <= MAX_SEED:
            raise GeneratorError("seed", f"{self.seed} is not a whole number from 0 to {MAX_SEED}")
        if self.start is not None:
            try:
                dt.date.fromisoformat(str(self.start))
            except ValueError:
                raise GeneratorError("start", f"'{self.start}' is not a date (use YYYY-MM-DD)") from None
        try:
            check_time_zone(self.time_zone)
        except ValueError as exc:
            raise GeneratorError("time_zone", str(exc)) from None
        first = self.start_date
        if not first.year >= FIRST_YEAR or self.months > 12 * (LAST_YEAR + 1 - first.year) - (first.month - 1):
            raise GeneratorError("start", f"{first.date()} with {self.months} month(s) goes beyond the years "
                                          f"{FIRST_YEAR}-{LAST_YEAR} a timestamp may have")
        hours = (self.months * 31 + 1) * 24
        if self.car_parks * hours > MAX_ROWS:
            raise GeneratorError("car_parks", f"{self.car_parks:,} with {self.months} month(s) is up to "
                                              f"{self.car_parks * hours:,} rows; the generator makes at most "
                                              f"{MAX_ROWS:,} (fewer car parks or months)")

    @property
    def start_date(self) -> pd.Timestamp:
        """The first day (naive date; its midnight is wall time in :attr:`time_zone`)."""
        if self.start:
            return pd.Timestamp(dt.date.fromisoformat(str(self.start)))
        return pd.Timestamp(DEFAULT_DRIFT_START if self.drift else DEFAULT_START)


def generate(settings: GeneratorSettings = GeneratorSettings()) -> pd.DataFrame:
    """Generate the dataset described by ``settings``, in the contract's column order.

    The time column is aware (``datetime64[ns, <time_zone>]``), every hour
    that exists on that clock from the first day's midnight for ``months``
    months, rows ordered by time, then car park.
    """
    rng = np.random.default_rng(settings.seed)
    start = settings.start_date.normalize()
    hours = pd.date_range(start, start + pd.DateOffset(months=settings.months), freq="h", inclusive="left",
                          tz=settings.time_zone)
    wall = hours.tz_localize(None)  # local wall time: what calendars, holidays and habits follow
    parks = _car_parks(settings.car_parks, rng)
    n_parks, n_hours = len(parks), len(hours)

    hour = wall.hour.to_numpy()[None, :].astype(float)
    dow = wall.dayofweek.to_numpy()[None, :]
    month = wall.month.to_numpy()[None, :]
    holidays = set(_swedish_holidays(range(start.year, wall[-1].year + 1)))
    is_holiday_1d = np.array([d in holidays for d in wall.date])
    is_holiday = np.broadcast_to(is_holiday_1d[None, :], (n_parks, n_hours))
    temperature, rain = _weather(wall, rng, warmer=4.0 if settings.drift else 0.0)
    event_1d = _event_hours(wall, rng)

    kinds = parks["car_park_kind"].to_numpy()[:, None]
    weekend = (dow >= 5) | is_holiday_1d[None, :]
    shift = 1.5 if settings.drift else 0.0  # drift: peaks move later in the day
    occupancy = np.zeros((n_parks, n_hours))
    for kind in KINDS:
        rows = np.flatnonzero(kinds[:, 0] == kind)
        if rows.size:
            occupancy[rows] = _profile(kind, hour - shift, dow, month, weekend, is_holiday_1d[None, :])

    # Events: arenas fill up, the city centre feels it a little.
    near_event = np.isin(kinds, ["event_arena", "city_centre"]) & event_1d[None, :]
    occupancy += np.where(kinds == "event_arena", 0.75, 0.10) * near_event
    # Weather: rain and cold bring people into city car parks by car.
    weather_sensitive = np.isin(kinds, ["city_centre", "shopping_mall", "train_station"])
    occupancy += weather_sensitive * (0.06 * np.minimum(rain, 5.0) / 5.0 + 0.04 * (temperature < 0))

    price = _prices(parks, hours, rng, drift=settings.drift)
    base_price = parks["base_price"].to_numpy()[:, None]
    occupancy *= (price / base_price) ** -0.4
    if settings.drift:
        commuter = np.isin(kinds, ["city_centre", "train_station", "university_campus"])
        occupancy *= np.where(commuter & ~weekend, 0.75, 1.0)
    occupancy *= parks["level"].to_numpy()[:, None]
    occupancy += rng.normal(0.0, 0.03, size=occupancy.shape)
    occupancy = np.clip(occupancy, 0.0, 1.0)

    frame = pd.DataFrame(
        {
            "timestamp": pd.DatetimeIndex(np.tile(hours.asi8, n_parks).view("datetime64[ns]"))
            .tz_localize("UTC").tz_convert(hours.tz),
            "car_park_id": np.repeat(parks["car_park_id"].to_numpy(), n_hours),
            "car_park_kind": np.repeat(parks["car_park_kind"].to_numpy(), n_hours),
            "capacity": np.repeat(parks["capacity"].to_numpy(), n_hours).astype("int64"),
            "temperature_c": np.tile(temperature, n_parks).round(1),
            "rain_mm": np.tile(rain, n_parks).round(1),
            "is_holiday": is_holiday.reshape(-1).copy(),
            "event_nearby": np.broadcast_to(near_event, (n_parks, n_hours)).reshape(-1).copy(),
            "price_per_hour": price.reshape(-1).round(2),
            "occupancy_rate": occupancy.reshape(-1).round(4),
        }
    )
    plates, customers = _personal_columns(len(frame), frame["occupancy_rate"].to_numpy(), rng)
    frame.insert(9, "last_entry_plate", plates)
    frame.insert(10, "last_entry_customer_id", customers)

    # Missing sensor readings: whole hours lost by a car park's counter, and
    # gaps in the weather feed.
    keep = rng.random(len(frame)) >= 0.005
    weather_gap = rng.random(len(frame)) < 0.01
    frame.loc[weather_gap, ["temperature_c", "rain_mm"]] = np.nan
    return frame.loc[keep].sort_values(["timestamp", "car_park_id"], kind="stable").reset_index(drop=True)



def _car_parks(count: int, rng: np.random.Generator) -> pd.DataFrame:
    kinds = [KINDS[i % len(KINDS)] for i in range(count)]
    capacity = [int(rng.integers(*_CAPACITY[k])) for k in kinds]
    return pd.DataFrame(
        {
            "car_park_id": [f"CP{i + 1:03d}" for i in range(count)],
            "car_park_kind": kinds,
            "capacity": capacity,
            "base_price": [_PRICE[k] * float(rng.uniform(0.85, 1.15)) for k in kinds],
            "level": rng.uniform(0.85, 1.1, size=count),
        }
    )


def _bump(hour: np.ndarray, centre: float, width: float) -> np.ndarray:
    """A smooth daily peak: 1 at ``centre``, falling off over ``width`` hours."""
    return np.exp(-0.5 * ((hour - centre) / width) ** 2)


def _profile(
    kind: str,
    hour: np.ndarray,
    dow: np.ndarray,
    month: np.ndarray,
    weekend: np.ndarray,
    holiday: np.ndarray,
) -> np.ndarray:
    """Typical occupancy of one kind of car park by hour, day and season."""
    saturday = (dow == 5) & ~holiday
    if kind == "city_centre":
        week = 0.15 + 0.60 * _bump(hour, 13, 4)
        sat = 0.15 + 0.70 * _bump(hour, 14, 3.5)
        sun = 0.10 + 0.35 * _bump(hour, 14, 3)
    elif kind == "residential":
        week = 0.85 - 0.45 * _bump(hour, 13, 4.5)
        sat = sun = 0.85 - 0.20 * _bump(hour, 14, 4)
    elif kind == "airport":
        season = 0.15 * np.isin(month, [6, 7, 8, 12])
        week = sat = sun = 0.50 + 0.15 * _bump(hour, 10, 5) + season
    elif kind == "event_arena":
        week = sat = sun = 0.06 + 0.05 * _bump(hour, 14, 4)
    elif kind == "hospital":
        week = 0.25 + 0.55 * _bump(hour, 11, 3.5) + 0.15 * _bump(hour, 18, 1.5)
        sat = sun = 0.20 + 0.35 * _bump(hour, 15, 3)
    elif kind == "shopping_mall":
        christmas = 1.0 + 0.3 * (month == 12)
        week = (0.05 + 0.55 * _bump(hour, 16, 3.5)) * christmas
        sat = (0.05 + 0.80 * _bump(hour, 14, 3)) * christmas
        sun = (0.05 + 0.50 * _bump(hour, 14, 3)) * christmas
    elif kind == "train_station":
        week = 0.10 + 0.75 * _bump(hour, 12.5, 5)
        sat = sun = 0.10 + 0.25 * _bump(hour, 13, 4)
    elif kind == "university_campus":
        term = np.where(np.isin(month, [6, 7, 8]), 0.35, 1.0)
        week = (0.05 + 0.70 * _bump(hour, 12, 3.5)) * term
        sat = sun = 0.05 + 0.10 * _bump(hour, 13, 3)
    else:  # pragma: no cover - KINDS is closed
        raise ValueError(kind)
    return np.where(weekend, np.where(saturday, sat, sun), week)


def _weather(hours: pd.DatetimeIndex, rng: np.random.Generator, warmer: float) -> tuple[np.ndarray, np.ndarray]:
    """One city's hourly temperature (°C) and rain (mm): seasonal, daily, persistent."""
    doy = hours.dayofyear.to_numpy()
    hour = hours.hour.to_numpy()
    days = (hours.normalize() - hours[0].normalize()).days.to_numpy()
    daily_anomaly = np.cumsum(rng.normal(0, 1.2, size=days.max() + 1)) * 0.5
    daily_anomaly -= np.convolve(daily_anomaly, np.ones(15) / 15, mode="same")
    temperature = (
        7.0
        + 10.0 * np.sin(2 * np.pi * (doy - 110) / 365.25)
        + 4.0 * np.sin(2 * np.pi * (hour - 9) / 24)
        + daily_anomaly[days]
        + rng.normal(0, 0.7, size=len(hours))
        + warmer
    )
    wet_day = rng.random(days.max() + 1) < 0.35
    raining = wet_day[days] & (rng.random(len(hours)) < 0.35)
    rain = np.where(raining, rng.exponential(1.2, size=len(hours)), 0.0)
    return np.clip(temperature, -35, 40), np.clip(rain, 0, 60)


def _event_hours(hours: pd.DatetimeIndex, rng: np.random.Generator) -> np.ndarray:
    """Evening events at the arena: most Fridays and Saturdays, some weekdays."""
    days = pd.DatetimeIndex(np.unique(hours.normalize()))
    chance = np.where(days.dayofweek >= 4, 0.6, 0.12)
    event_days = set(days[rng.random(len(days)) < chance].date)
    on_day = np.array([d in event_days for d in hours.date])
    return on_day & (hours.hour >= 17) & (hours.hour <= 22)


def _prices(parks: pd.DataFrame, hours: pd.DatetimeIndex, rng: np.random.Generator, drift: bool) -> np.ndarray:
    """Tariffs per car park and hour: one or two price changes a year per car park.

    The changes fall at random hours of a year-long span from the start (or of
    the whole period, when longer), so a period shorter than a year has only
    its share of them: a month holds a change with a chance of about 1 in 12,
    as a month of real tariffs does. A change past the period's end is not
    seen.
    """
    base = parks["base_price"].to_numpy()[:, None]
    price = np.repeat(base, len(hours), axis=1)
    span = max(len(hours), HOURS_PER_YEAR)
    for i in range(len(parks)):
        for _ in range(int(rng.integers(1, 3))):
            at = int(rng.integers(0, span))
            price[i, at:] *= float(rng.uniform(1.05, 1.25))
    if drift:
        price *= 1.4
    return price


def _personal_columns(n: int, occupancy: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A licence plate and (for account holders) a customer id per row.

    Plates repeat, as regular customers come back; no plate when nobody
    entered (an empty car park).
    """
    pool_size = 20_000
    letters = _PLATE_LETTERS[rng.integers(0, len(_PLATE_LETTERS), size=(pool_size, 3))]
    digits = rng.integers(0, 1000, size=pool_size)
    plates = np.array([f"{''.join(chars)} {d:03d}" for chars, d in zip(letters, digits, strict=True)], dtype=object)
    has_account = rng.random(pool_size) < 0.6
    account = np.array([f"CU-{i:06d}" for i in rng.integers(0, 999_999, size=pool_size)], dtype=object)
    account[~has_account] = None
    pick = np.minimum(rng.zipf(1.3, size=n) - 1, pool_size - 1)
    pick = (pick * 7919 + rng.integers(0, 3, size=n)) % pool_size
    empty = occupancy < 0.02
    plate = plates[pick].copy()
    customer = account[pick].copy()
    plate[empty] = None
    customer[empty] = None
    return plate, customer


def _swedish_holidays(years: range) -> list[dt.date]:
    """Swedish public holidays (the days shops and offices close) in ``years``."""
    days: list[dt.date] = []
    for year in years:
        easter = _easter(year)
        midsummer_eve = next(dt.date(year, 6, d) for d in range(19, 26) if dt.date(year, 6, d).weekday() == 4)
        days += [
            dt.date(year, 1, 1),
            dt.date(year, 1, 6),
            easter - dt.timedelta(days=2),
            easter + dt.timedelta(days=1),
            dt.date(year, 5, 1),
            easter + dt.timedelta(days=39),
            dt.date(year, 6, 6),
            midsummer_eve,
            dt.date(year, 12, 24),
            dt.date(year, 12, 25),
            dt.date(year, 12, 26),
            dt.date(year, 12, 31),
        ]
    return days


def _easter(year: int) -> dt.date:
    """Gregorian Easter Sunday (anonymous Gregorian algorithm)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    weekday_shift = (32 + 2 * e + 2 * i - h - k) % 7  # 'l' in the published algorithm
    m = (a + 11 * h + 22 * weekday_shift) // 451
    month, day = divmod(h + weekday_shift - 7 * m + 114, 31)
    return dt.date(year, month, day + 1)
