"""Backtest of the revenue forecast on CDNOW: daily revenue 1997-01-01..1998-06-30, the last
90 days held back, monthly (30-day) MAPE against a seasonal-naive baseline, and how often the
90 % interval held the actual day.

    python bench/eval_forecast.py [--hold-back 90]
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import date
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cloud.crm.attribution.forecast import backtest  # noqa: E402

SHARED = Path(os.environ.get("MALLPULSE_SHARED", REPO.parent / "shared"))


def daily_revenue() -> tuple[date, list[float]]:
    path = SHARED / "data" / "cdnow" / "CDNOW_master.txt"
    if not path.is_file():
        sys.exit(f"missing {path}: set MALLPULSE_SHARED")
    first = date(1997, 1, 1)
    days = (date(1998, 6, 30) - first).days + 1
    revenue = np.zeros(days)
    for line in path.read_text().splitlines()[1:]:
        _, day, _, dollars = line.split()
        d = date(int(day[:4]), int(day[4:6]), int(day[6:]))
        revenue[(d - first).days] += float(dollars)
    return first, revenue.tolist()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hold-back", type=int, default=90)
    args = ap.parse_args()
    first, series = daily_revenue()
    for trend, skip in [(t, s) for t in ("local level", "local linear trend") for s in (0, 90)]:
        # the whole history, and without the first quarter's acquisition spike
        result = backtest(series[skip:], first, args.hold_back, trend=trend)
        print(f"{trend:18s} history from day {skip:3d}: monthly MAPE {result['mape']:.1%}"
              f" (seasonal naive {result['mape_seasonal_naive']:.1%}),"
              f" 90% interval held {result['interval_coverage']:.0%} of days,"
              f" {int(result['periods'])} months")  # fmt: skip


if __name__ == "__main__":
    main()
