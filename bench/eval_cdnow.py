"""Evaluate the predictive models on CDNOW (see docs/predictive.md).

Replays CDNOW_master.txt in time order through the CRM's record_transaction into a scratch
database, learns the churn model with the real consumer, compares it at a cut-off with BG/NBD,
and checks the CLV fits against Fader, Hardie and Lee (2005). Prints progress and a report; writes
the numbers as JSON and, with --plot, ROC curves as a PNG.

    python bench/eval_cdnow.py [--out cdnow-eval.json] [--plot docs/images/cdnow_roc.png]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cloud.ml import evaluation  # noqa: E402


def plot(result: dict, path: Path) -> None:
    """ROC curves at the cut-off: the churn model against BG/NBD."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cut = result["cutoff"]
    aucs = {
        "churn model (river)": cut["auc_churn_model"],
        "BG/NBD -E[purchases]": cut["auc_bgnbd_expected_purchases"],
        "BG/NBD 1 - P(alive)": cut["auc_bgnbd_1_minus_p_alive"],
    }
    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    for name, points in cut["roc_curves"].items():
        fpr, tpr = zip(*points, strict=True)
        ax.plot(fpr, tpr, label=f"{name}: AUC {aucs[name]:.3f}")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(f"CDNOW churn in the 26 weeks after {cut['date']}\n{cut['customers']} customers")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)


def main() -> None:
    """Parse arguments, run, print, save."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--admin-url",
        default=os.environ.get(
            "MALLPULSE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
        help="PostgreSQL URL allowed to CREATE DATABASE (a scratch database is made and dropped)",
    )
    ap.add_argument(
        "--shared",
        type=Path,
        default=Path(os.environ.get("MALLPULSE_SHARED", REPO.parent / "shared")),
        help="Shared assets folder.",
    )
    ap.add_argument("--cutoff-weeks", type=int, default=52, help="Cut-off, weeks from 1997-01-01.")
    ap.add_argument("--out", type=Path, default=None, help="Write the numbers as JSON here.")
    ap.add_argument("--keep", action="store_true", help="Keep the scratch database.")
    ap.add_argument("--customers", type=int, default=None, help="Only the first N customers.")
    ap.add_argument("--plot", type=Path, default=None, help="Write ROC curves (PNG) here.")
    args = ap.parse_args()
    master = args.shared / "data/cdnow/CDNOW_master.txt"
    if not master.is_file():
        sys.exit(f"missing {master}; set MALLPULSE_SHARED")
    t0 = time.perf_counter()
    result = evaluation.run_in_scratch_database(
        args.admin_url,
        args.shared,
        keep=args.keep,
        cutoff_weeks=args.cutoff_weeks,
        customers=args.customers,
        progress=lambda m: print(f"[{time.perf_counter() - t0:7.1f}s] {m}", flush=True),
    )
    print(evaluation.report(result))
    if args.plot:
        plot(result, args.plot)
        print(f"wrote {args.plot}")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2, default=str))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
