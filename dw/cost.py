"""What a dataset costs on Glue: per run and per month, for `dw list`.

Glue bills each job run per DPU-second with a one-minute minimum (Glue 2.0 and later), at the
standard or the Flex price. A run's duration is the median of the dataset's recent successful
runs in the ledger; before any run, a guess from its size category. Runs per month follow from
its schedule. Estimates only: Glue's start-up time and the crawlers are not counted.
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dwlib import ledger
from dwlib.config import CRON, RATE, CoreConfig, DatasetConfig
from dwlib.lake import LocalLake
from dwlib.metrics import duration_seconds
from dwlib.naming import Naming

DPU_PER_WORKER = {"G.025X": 0.25, "G.1X": 1.0, "G.2X": 2.0, "G.4X": 4.0, "G.8X": 8.0}
# Minutes one job run takes before any run is measured, by size category (a guess, shown as such).
SIZE_MINUTES = {"small": 2.0, "medium": 5.0, "large": 15.0, "xlarge": 30.0}
RECENT_RUNS = 10
HOURS_PER_MONTH = 730.0  # 365 * 24 / 12
MINIMUM_SECONDS = 60.0


@dataclass(frozen=True)
class Estimate:
    per_run: float  # USD, every layer of one pipeline run, at the dataset's execution class
    per_month: float | None  # None: on demand
    basis: str  # "median of 3 local run(s)" or "small size estimate"
    standard_per_run: float
    flex_per_run: float | None  # the same run on Flex, when Flex can run its workers
    runs_per_month: float | None
    execution_class: str = "standard"

    @property
    def flex_saving_per_month(self) -> float | None:
        if self.flex_per_run is None or self.runs_per_month is None:
            return None
        return (self.standard_per_run - self.flex_per_run) * self.runs_per_month

    def text(self) -> str:
        month = f"${self.per_month:,.2f}/month" if self.per_month is not None else "on demand"
        lines = [f"${self.per_run:,.3f}/run, {month}", f"({self.basis})"]
        saving = self.flex_saving_per_month
        if saving is not None:
            lines.append(
                f"flex saves ${saving:,.2f}/month"
                if self.execution_class == "flex"
                else f"flex would save ${saving:,.2f}/month"
            )
        return "\n".join(lines)


def _expand(text: str, low: int, high: int, names: tuple[str, ...] = ()) -> set[int] | None:
    """The values of one cron field; None for the forms this estimate does not enumerate (L, W, #)."""
    if text in ("*", "?"):
        return set(range(low, high + 1))
    values: set[int] = set()
    for item in text.split(","):
        base, _, step = item.partition("/")
        if re.search(r"[LW#]", base):
            return None

        def number(token: str) -> int:
            return low + names.index(token) if token in names else int(token)

        if base == "*":
            first, last = low, high
        elif "-" in base:
            first, last = (number(t) for t in base.split("-", 1))
        else:
            first = number(base)
            last = high if step else first
        values.update(range(first, last + 1, int(step) if step else 1))
    return values


_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")


def runs_per_month(schedule: str | None) -> float | None:
    """How many runs a schedule starts in an average month; None for on-demand datasets.

    cron() is counted over a real 30-day window; L, W and # days count as one run a month at
    each listed time.
    """
    if not schedule:
        return None
    if match := RATE.match(schedule):
        value, unit = int(match["value"]), match["unit"].rstrip("s")
        hours = value * {"minute": 1 / 60, "hour": 1, "day": 24}[unit]
        return HOURS_PER_MONTH / hours
    match = CRON.match(schedule)
    if not match:
        return None
    minutes, hours, dom, month, dow, _year = match["fields"].split(" ")
    mins, hrs = _expand(minutes, 0, 59), _expand(hours, 0, 23)
    days, months, weekdays = _expand(dom, 1, 31), _expand(month, 1, 12, _MONTHS), _expand(dow, 1, 7, _DAYS)
    if mins is None or hrs is None or months is None:
        return None
    per_day = len(mins) * len(hrs)
    if days is None or weekdays is None:  # L / W / #: one day a month
        return float(per_day)
    start, count = datetime(2027, 1, 1, tzinfo=UTC), 0
    for offset in range(365):
        day = start + timedelta(days=offset)
        weekday = (day.isoweekday() % 7) + 1  # SUN=1 .. SAT=7, as EventBridge numbers them
        if day.month in months and day.day in days and weekday in weekdays:
            count += per_day
    return count / 12


def recent_durations(lake_dir: Path, dataset: str, layer: str, skipped: list[str] | None = None) -> list[float]:
    """Durations (seconds) of the dataset's latest successful runs of one layer in the ledger.

    Entries are read as every ledger reader reads them (ledger.read_entry); one that is not a run's entry (truncated,
    edited by hand) is skipped, its key added to `skipped`, as `dw runs` names it rather than failing.
    """
    lake = LocalLake(lake_dir)
    folder = lake_dir / Naming.runs_prefix(dataset)
    suffix = ".json" if layer == "bronze" else f".{layer}.json"
    found = []
    for path in sorted(folder.glob("run_id=*.json"), reverse=True) if folder.is_dir() else []:
        name = path.name
        if layer == "bronze" and name.count(".") != 1:  # run_id=X.json only; .gold.json and .raw.json are others
            continue
        if not name.endswith(suffix):
            continue
        key = path.relative_to(lake_dir).as_posix()
        try:
            summary = ledger.read_entry(lake, key)
        except (ledger.UnreadableEntry, OSError):
            if skipped is not None:
                skipped.append(key)
            continue
        if summary is not None and summary["status"] == "succeeded":
            found.append(duration_seconds(summary))
        if len(found) == RECENT_RUNS:
            break
    return found


def estimate(core: CoreConfig, dataset: DatasetConfig, layers: list[str], lake_dir: Path) -> Estimate:
    workers = core.glue_worker_configs[dataset.data_size_category]
    dpus = workers.number_of_workers * DPU_PER_WORKER[workers.worker_type]
    measured = 0
    dpu_hours = 0.0
    skipped: list[str] = []
    for layer in layers:
        durations = recent_durations(lake_dir, dataset.dataset, layer, skipped)
        measured = max(measured, len(durations))
        seconds = statistics.median(durations) if durations else SIZE_MINUTES[dataset.data_size_category] * 60
        dpu_hours += dpus * max(seconds, MINIMUM_SECONDS) / 3600
    prices = core.prices
    flex_ok = workers.worker_type in ("G.1X", "G.2X")
    price = prices.glue_flex_dpu_hour if dataset.execution_class == "flex" and flex_ok else prices.glue_dpu_hour
    per_run = dpu_hours * price
    runs = runs_per_month(dataset.schedule)
    basis = f"median of {measured} local run(s)" if measured else f"{dataset.data_size_category} size estimate"
    if skipped:
        basis += f"; {len(skipped)} unreadable ledger entr{'y' if len(skipped) == 1 else 'ies'} skipped: dw runs {dataset.dataset}"
    return Estimate(
        per_run=per_run,
        per_month=per_run * runs if runs is not None else None,
        basis=basis,
        standard_per_run=dpu_hours * prices.glue_dpu_hour,
        flex_per_run=dpu_hours * prices.glue_flex_dpu_hour if flex_ok else None,
        runs_per_month=runs,
        execution_class=dataset.execution_class if flex_ok else "standard",
    )
