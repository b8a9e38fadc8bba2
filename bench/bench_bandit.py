"""Best channel and time: the lift of the Thompson-sampling bandit over random choice, on a
simulated population whose preferences are known, against baselines run in the same process on
the same population and the same random outcomes.

Population: `--segments` segments; each has a mean engagement rate per channel (email, sms,
push, inapp) and a send-hour profile over the four local buckets (08, 11, 14, 17 h). Each of
`--people` people draws their own channel rates from Beta(k m, k (1 - m)) around their segment's
means m (k = `--spread`, smaller: people differ more from their segment) and their own hour
profile from a Dirichlet around the segment's. A message on channel c in bucket h is engaged
with probability rate[c] * hour[h] / max(hour) (the best hour keeps the channel's rate).

Each round every person gets one message, chosen by each policy:
- random: a uniform channel and hour (the baseline of the lift);
- segment-best: an oracle that knows each segment's true mean rates and plays its best
  channel and hour for every member (what a marketer's per-segment rule could do at best);
- thompson (uniform prior): the bandit with Beta(1, 1) priors;
- thompson (segment prior): the production bandit (cloud.crm.messaging.bandit): per person,
  channel and hour, Beta posteriors whose prior is the segment's pooled counts, shrunk to
  `--prior-weight` pseudo-observations (bandit.segment_prior, vectorised here and checked
  against it);
- oracle: each person's own best (channel, hour); regret is measured against it.
Outcomes are known before the next round (a round is a campaign, e.g. weekly; the outcome window
is shorter). Engagement is counted as realised; regret as expected (true rates).

    python bench/bench_bandit.py [--people 20000] [--rounds 52] [--seed 1] [--plot PATH]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cloud.crm.messaging.bandit import Counts, segment_prior, thompson_batch  # noqa: E402

CHANNELS = ("email", "sms", "push", "inapp")
HOURS = (8, 11, 14, 17)


@dataclass
class World:
    """The population and its true engagement rates."""

    segment: np.ndarray  # (people,) segment index
    rate: np.ndarray  # (people, channels) true rate at the person's best hour
    hour: np.ndarray  # (people, hours) hour factor, max 1
    seg_rate: np.ndarray  # (segments, channels)
    seg_hour: np.ndarray  # (segments, hours)

    def p(self, c: np.ndarray, h: np.ndarray) -> np.ndarray:
        """Engagement probability of each person's (channel, hour)."""
        rows = np.arange(len(c))
        return np.asarray(self.rate[rows, c] * self.hour[rows, h])


def make_world(rng: np.random.Generator, people: int, segments: int, spread: float) -> World:
    """Segments with distinct tastes, people scattered around them."""
    seg_rate = rng.beta(1.2, 8.0, size=(segments, len(CHANNELS)))  # means ~0.13, some 0.3+
    seg_hour = rng.dirichlet(np.full(len(HOURS), 2.0), size=segments)
    segment = rng.integers(0, segments, size=people)
    m = seg_rate[segment]
    rate = rng.beta(spread * m, spread * (1 - m))
    hours = np.stack([rng.dirichlet(20 * seg_hour[s] + 0.1) for s in segment])
    hour = hours / hours.max(axis=1, keepdims=True)
    return World(segment, rate, hour, seg_rate, seg_hour / seg_hour.max(axis=1, keepdims=True))


def shrunk_prior(succ: np.ndarray, trials: np.ndarray, weight: float) -> np.ndarray:
    """bandit.segment_prior over arrays: (alpha, beta) stacked on the last axis."""
    a, b = 1.0 + succ, 1.0 + trials - succ
    mean = a / (a + b)
    mass = np.minimum(a + b, max(weight, 2.0))
    return np.stack([mean * mass, (1 - mean) * mass], axis=-1)


class Thompson:
    """Per-person Beta-Bernoulli arms over channels and hours, optionally with segment priors."""

    def __init__(self, world: World, segments: int, weight: float | None) -> None:
        n = len(world.segment)
        self.world, self.segments, self.weight = world, segments, weight
        self.cs = np.zeros((n, len(CHANNELS)))
        self.ct = np.zeros((n, len(CHANNELS)))
        self.hs = np.zeros((n, len(HOURS)))
        self.ht = np.zeros((n, len(HOURS)))

    def _prior(self, succ: np.ndarray, trials: np.ndarray) -> np.ndarray:
        if self.weight is None:
            ones: np.ndarray = np.ones((*succ.shape, 2))
            return ones
        seg = self.world.segment
        pooled_s = np.zeros((self.segments, succ.shape[1]))
        pooled_t = np.zeros_like(pooled_s)
        np.add.at(pooled_s, seg, succ)
        np.add.at(pooled_t, seg, trials)
        prior: np.ndarray = shrunk_prior(pooled_s, pooled_t, self.weight)[seg]
        return prior

    def choose(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        pc = self._prior(self.cs, self.ct)
        ph = self._prior(self.hs, self.ht)
        c = thompson_batch(pc[..., 0] + self.cs, pc[..., 1] + self.ct - self.cs, rng)
        h = thompson_batch(ph[..., 0] + self.hs, ph[..., 1] + self.ht - self.hs, rng)
        return c, h

    def learn(self, c: np.ndarray, h: np.ndarray, hit: np.ndarray) -> None:
        rows = np.arange(len(c))
        self.ct[rows, c] += 1
        self.cs[rows, c] += hit
        self.ht[rows, h] += 1
        self.hs[rows, h] += hit


Series = dict[str, np.ndarray]


def run(args: argparse.Namespace) -> dict[str, Series]:
    """Per-round realised engagement and expected regret of every policy."""
    rng = np.random.default_rng(args.seed)
    world = make_world(rng, args.people, args.segments, args.spread)
    n = args.people
    joint = world.rate[:, :, None] * world.hour[:, None, :]  # (people, channels, hours)
    best = joint.reshape(n, -1).max(axis=1)
    seg_joint = world.seg_rate[:, :, None] * world.seg_hour[:, None, :]
    seg_best = seg_joint.reshape(args.segments, -1).argmax(axis=1)
    seg_c, seg_h = np.divmod(seg_best[world.segment], len(HOURS))
    bandits = {
        "thompson (uniform prior)": Thompson(world, args.segments, None),
        "thompson (segment prior)": Thompson(world, args.segments, args.prior_weight),
    }
    names = ["random", "segment-best", *bandits, "oracle"]
    hits = {k: np.zeros(args.rounds) for k in names}
    regret = {k: np.zeros(args.rounds) for k in names}
    oc, oh = np.divmod(joint.reshape(n, -1).argmax(axis=1), len(HOURS))
    for t in range(args.rounds):
        u = rng.random(n)  # common random numbers: every policy meets the same luck
        picks = {
            "random": (rng.integers(0, len(CHANNELS), n), rng.integers(0, len(HOURS), n)),
            "segment-best": (seg_c, seg_h),
            "oracle": (oc, oh),
        }
        for name, bandit in bandits.items():
            picks[name] = bandit.choose(rng)
        for name, (c, h) in picks.items():
            p = world.p(c, h)
            hit = (u < p).astype(float)
            hits[name][t] = hit.sum()
            regret[name][t] = (best - p).sum()
            if name in bandits:
                bandits[name].learn(c, h, hit)
    return {"hits": hits, "regret": regret}


def check_prior_matches_the_library() -> None:
    """The vectorised prior is bandit.segment_prior."""
    rng = np.random.default_rng(0)
    for _ in range(200):
        trials = int(rng.integers(0, 10_000))
        succ = int(rng.integers(0, trials + 1))
        weight = float(rng.uniform(0.5, 50))
        want = segment_prior(Counts(trials, succ), weight=weight)
        got = shrunk_prior(np.array(succ, float), np.array(trials, float), weight)
        assert np.allclose(got, [want.alpha, want.beta]), (trials, succ, weight)


def report(out: dict[str, Series], args: argparse.Namespace, seconds: float) -> None:
    hits, regret = out["hits"], out["regret"]
    load = os.getloadavg()
    print(
        f"population {args.people} people, {args.segments} segments, {len(CHANNELS)} channels x"
        f" {len(HOURS)} hour buckets, {args.rounds} rounds (one message per person per round),"
        f" spread {args.spread}, prior weight {args.prior_weight}, seed {args.seed}"
    )
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; simulated in {seconds:.1f} s")
    print("engaged: realised over all rounds; rate: per message; lift: engaged / random's;")
    print("regret: expected engagements lost to each person's own best; round r: that round's rate")
    base = hits["random"].sum()
    checkpoints = sorted({r for r in (5, 10, 20, args.rounds) if r <= args.rounds})
    head = "".join(f" {'round ' + str(r):>9}" for r in checkpoints)
    print(f"{'policy':26} {'engaged':>9} {'rate':>6} {'lift':>8} {'regret':>9}{head}")
    for name in hits:
        total = hits[name].sum()
        rates = "".join(f" {hits[name][r - 1] / args.people:9.4f}" for r in checkpoints)
        print(
            f"{name:26} {total:9.0f} {total / (args.people * args.rounds):6.4f}"
            f" {total / base:7.3f}x {regret[name].sum():9.0f}{rates}"
        )
    ts = hits["thompson (segment prior)"]
    late = slice(args.rounds // 2, None)
    print(
        f"thompson (segment prior) vs random: lift {ts.sum() / base:.3f}x overall,"
        f" {ts[late].sum() / hits['random'][late].sum():.3f}x over the second half;"
        f" vs segment-best {ts.sum() / hits['segment-best'].sum():.3f}x"
    )


def plot(out: dict[str, Series], args: argparse.Namespace, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    rounds = np.arange(1, args.rounds + 1)
    base = np.cumsum(out["hits"]["random"])
    for name, series in out["hits"].items():
        left.plot(rounds, np.cumsum(series) / base, label=name)
        right.plot(rounds, np.cumsum(out["regret"][name]) / args.people, label=name)
    left.set(xlabel="round", ylabel="cumulative engagement / random", title="Lift over random")
    right.set(xlabel="round", ylabel="cumulative regret per person", title="Regret vs oracle")
    left.legend(fontsize=8)
    for ax in (left, right):
        ax.grid(alpha=0.3)
    fig.suptitle(
        f"Thompson sampling over channel x send hour: {args.people} simulated people,"
        f" {args.segments} segments (seed {args.seed})",
        fontsize=10,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"plot written to {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--people", type=int, default=20_000)
    parser.add_argument("--segments", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=52)
    parser.add_argument("--spread", type=float, default=8.0)
    parser.add_argument("--prior-weight", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--plot", type=Path, default=None, help="write the figure (matplotlib)")
    args = parser.parse_args()
    check_prior_matches_the_library()
    t0 = time.perf_counter()
    out = run(args)
    report(out, args, time.perf_counter() - t0)
    if args.plot is not None:
        plot(out, args, args.plot)


if __name__ == "__main__":
    main()
