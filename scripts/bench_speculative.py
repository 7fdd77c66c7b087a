#!/usr/bin/env python
"""Wall-clock speed of speculative decoding against plain greedy decoding, with exact output.

Usage (from the repository root)::

    OMP_NUM_THREADS=1 python scripts/bench_speculative.py --threads 1     # writes linattn_edu/results/speculative.json
    python scripts/bench_speculative.py --fast --out-dir /tmp/spec          # a quick check of the script

What it does
    1. Trains a *target* (a softmax Transformer, RoPE, a few million parameters) and a much
       smaller *draft* (one layer) on the book's byte corpus, with fixed seeds, then distills the
       draft on the target's greedy tokens so that it agrees with the target more often
       (``--cache-dir`` keeps the trained weights so that a rerun measures without retraining).
    2. For each of ``--prompts`` prompts from the validation split, alternately times plain
       greedy decoding (:func:`linattn_edu.speculative.greedy_generate`: ``prefill`` then one
       ``step`` per token) and speculative decoding
       (:func:`linattn_edu.speculative.speculative_generate`: the draft builds its tree one
       batched call per level, the target verifies it in ONE pass and commits the accepted path
       from that pass) ``--repeats`` times, keeping each one's median, and **asserts that both
       return the same tokens**.
    3. Reports the wall-clock speedup (total greedy time / total speculative time over the
       prompts), target passes per token, tokens per round, and where speculative decoding's time
       goes: drafting, the target's verification passes, committing, prefilling, the rest.

Output
    A table on stdout and ``speculative.json`` (``linattn_edu/results/`` or ``--out-dir``) written
    by :func:`linattn_edu.bench.save_results`: device, date, torch/triton versions, the command,
    and in ``config`` the sizes, the git commit, Python/NumPy versions, the thread count, the load
    average before the run and the script's wall time. The paper's comparison point (You et al.,
    ICML 2024: up to 2x faster generation with speculative decoding) is recorded as
    ``paper_claim``; it is for 7B LLaMA models on A100 GPUs, this is a byte-level model on a CPU.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from linattn_edu import bench  # noqa: E402
from linattn_edu.data import load_corpus  # noqa: E402
from linattn_edu.models import build_model, count_parameters  # noqa: E402
from linattn_edu.speculative import greedy_generate, speculative_generate  # noqa: E402
from linattn_edu.train import evaluate_perplexity, train_lm  # noqa: E402

PAPER_CLAIM = ("You et al. (ICML 2024), 'When Linear Attention Meets Autoregressive Decoding': up to 2x faster "
               "generation with speculative decoding (Medusa-style tree drafts) for linearized LLaMA-7B-class "
               "models on GPUs")

PRESETS: dict[str, dict[str, Any]] = {
    # The measured configuration: a 7.5M-parameter target, a 66k-parameter draft.
    "cpu": dict(target=dict(d_model=320, n_layers=6, n_heads=5), draft=dict(d_model=64, n_layers=1, n_heads=2),
                target_steps=400, draft_steps=2000, seq_len=64, batch_size=8, lr=3e-3,
                distill_windows=800, distill_steps=2000, distill_lr=2e-3,
                prompts=6, prompt_len=48, new_tokens=96, repeats=3, branching=(2, 2, 1)),
    # A check that the script runs (seconds): numbers from it mean nothing.
    "fast": dict(target=dict(d_model=32, n_layers=1, n_heads=2), draft=dict(d_model=16, n_layers=1, n_heads=2),
                 target_steps=4, draft_steps=4, seq_len=32, batch_size=4, lr=3e-3,
                 distill_windows=8, distill_steps=4, distill_lr=2e-3,
                 prompts=2, prompt_len=8, new_tokens=12, repeats=1, branching=(2, 1)),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fast", action="store_true", help="tiny sizes: check that the script runs")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--branching", type=str, default=None, help="draft tree, e.g. 2,2,1 (default: the preset's)")
    parser.add_argument("--prompts", type=int, default=None, help="number of prompts (default: the preset's)")
    parser.add_argument("--new-tokens", type=int, default=None, help="tokens generated per prompt")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per prompt and method (median kept)")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="keep / reuse the trained weights here (not committed)")
    parser.add_argument("--out-dir", type=Path, default=None, help="directory for speculative.json "
                        "(default: linattn_edu/results/)")
    parser.add_argument("--no-save", action="store_true", help="print only")
    return parser.parse_args(argv)


def git_commit() -> str | None:
    """``HEAD``'s hash, with ``+dirty`` when tracked files differ from it."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def trained(kind: str, sizes: dict[str, Any], steps: int, seed: int, cfg: dict[str, Any], corpus: Any,
            cache_dir: Path | None) -> tuple[torch.nn.Module, float | None]:
    """A model trained on the corpus (or loaded from ``cache_dir`` if trained there before); its train time."""
    torch.manual_seed(seed)
    model = build_model(kind, vocab_size=corpus.vocab_size, pos="rope", **sizes)
    tag = f"{kind}-{'-'.join(f'{k}{v}' for k, v in sorted(sizes.items()))}-s{steps}-seed{seed}-T{cfg['seq_len']}"
    path = None if cache_dir is None else cache_dir / f"{tag}.pt"
    if path is not None and path.exists():
        model.load_state_dict(torch.load(path))
        return model.eval(), None
    t0 = time.perf_counter()
    train_lm(model, corpus.train, seq_len=cfg["seq_len"], batch_size=cfg["batch_size"], steps=steps, lr=cfg["lr"],
             seed=seed, progress=False)
    seconds = time.perf_counter() - t0
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), path)
    return model.eval(), seconds


def distilled(draft: torch.nn.Module, target: torch.nn.Module, cfg: dict[str, Any], corpus: Any,
              cache_dir: Path | None, tag: str) -> tuple[torch.nn.Module, float | None]:
    """Fine-tune the draft to imitate the target: cross-entropy against the target's greedy choices.

    The target labels ``distill_windows`` random training windows of ``prompt_len + new_tokens``
    tokens once (forward passes only) and as many of its own greedy continuations of training
    prompts (the text it produces when generating, which a draft must predict, at the positions
    it is generated at); the draft then trains ``distill_steps`` AdamW
    steps on batches of them. A draft that agrees with its target more often is what speculative
    decoding needs (DistillSpec and Medusa-2 distill on the target's outputs too).
    """
    length, half = cfg["prompt_len"] + cfg["new_tokens"], cfg["prompt_len"]  # the generation regime
    path = None if cache_dir is None else cache_dir / f"{tag}-distill3-w{cfg['distill_windows']}-s{cfg['distill_steps']}-L{length}.pt"
    if path is not None and path.exists():
        draft.load_state_dict(torch.load(path))
        return draft.eval(), None
    t0 = time.perf_counter()
    gen = torch.Generator().manual_seed(2)
    train = torch.as_tensor(corpus.train).long()
    starts = torch.randint(0, len(train) - length, (cfg["distill_windows"],), generator=gen)
    windows = torch.stack([train[s : s + length] for s in starts.tolist()])
    target.eval()
    with torch.no_grad():
        generated = []  # the target's own text: prompts of prompt_len tokens, continued greedily
        for prompts in windows[:, :half].split(64):
            generated.append(torch.cat([prompts, greedy_generate(target, prompts, length - half)], dim=1))
        windows = torch.cat([windows, torch.cat(generated)])
        labels = torch.cat([target(w).argmax(-1) for w in windows.split(32)])
    draft.train()
    opt = torch.optim.AdamW(draft.parameters(), lr=cfg["distill_lr"], weight_decay=0.0)
    b = cfg["batch_size"]
    for step in range(cfg["distill_steps"]):
        idx = torch.randint(0, len(windows), (b,), generator=gen)
        for group in opt.param_groups:  # cosine decay to 10 %
            group["lr"] = cfg["distill_lr"] * (0.1 + 0.45 * (1 + np.cos(np.pi * step / cfg["distill_steps"])))
        loss = torch.nn.functional.cross_entropy(draft(windows[idx]).flatten(0, 1), labels[idx].flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
    seconds = time.perf_counter() - t0
    if path is not None:
        torch.save(draft.state_dict(), path)
    return draft.eval(), seconds


def agreement(draft: torch.nn.Module, target: torch.nn.Module, tokens: torch.Tensor) -> float:
    """How often the draft's greedy next token equals the target's on ``tokens`` ``(1, T)``."""
    with torch.no_grad():
        return float((draft(tokens).argmax(-1) == target(tokens).argmax(-1)).float().mean())


def measure(target, draft, prompt, new_tokens, branching, repeats) -> dict[str, Any]:
    """Greedy vs speculative on one prompt: median wall times, passes, the profile; asserts equal tokens."""
    greedy_runs, spec_runs = [], []
    greedy_generate(target, prompt, 4)  # warm-up
    speculative_generate(target, draft, prompt, 4, branching=branching)
    for _ in range(repeats):  # alternate, so that load changes hit both alike
        greedy_runs.append(greedy_generate(target, prompt, new_tokens, return_stats=True))
        spec_runs.append(speculative_generate(target, draft, prompt, new_tokens, branching=branching))
    ref = greedy_runs[0][0]
    for tokens, _ in greedy_runs + spec_runs:
        assert torch.equal(tokens, ref), "speculative decoding returned other tokens than greedy decoding"
    g_wall = statistics.median(s["wall_time_s"] for _, s in greedy_runs)
    spec_sorted = sorted(spec_runs, key=lambda r: r[1].wall_time_s)
    st = spec_sorted[len(spec_sorted) // 2][1]  # the median run, with its own profile
    gs = greedy_runs[0][1]
    return {
        "prompt_len": int(prompt.shape[1]), "new_tokens": int(ref.shape[1]), "exact": True,
        "greedy_wall_s": g_wall, "speculative_wall_s": st.wall_time_s, "speedup_wall": g_wall / st.wall_time_s,
        "greedy_target_passes": gs["target_passes"], "target_passes": st.target_passes,
        "prefill_passes": st.prefill_passes, "verify_passes": st.verify_passes, "commit_passes": st.commit_passes,
        "draft_calls": st.draft_calls, "rounds": st.rounds, "mean_accepted_length": st.mean_accepted_length,
        "passes_per_token": st.passes_per_token, "greedy_passes_per_token": gs["target_passes"] / ref.shape[1],
        "profile_s": {"draft": st.draft_time_s, "verify": st.verify_time_s, "commit": st.commit_time_s,
                      "prefill": st.prefill_time_s, "other": st.other_time_s},
        "greedy_wall_runs_s": [s["wall_time_s"] for _, s in greedy_runs],
        "speculative_wall_runs_s": [s.wall_time_s for _, s in spec_runs],
    }


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    g = sum(r["greedy_wall_s"] for r in rows)
    s = sum(r["speculative_wall_s"] for r in rows)
    tokens = sum(r["new_tokens"] for r in rows)
    prof = {k: sum(r["profile_s"][k] for r in rows) for k in rows[0]["profile_s"]}
    return {
        "speedup_wall": g / s, "greedy_wall_s": g, "speculative_wall_s": s, "tokens": tokens,
        "greedy_passes_per_token": sum(r["greedy_target_passes"] for r in rows) / tokens,
        "speculative_passes_per_token": sum(r["target_passes"] for r in rows) / tokens,
        "commit_passes": sum(r["commit_passes"] for r in rows),
        "mean_accepted_length": tokens / sum(r["rounds"] for r in rows),
        "profile_fraction": {k: v / s for k, v in prof.items()},
        "greedy_ms_per_token": 1e3 * g / tokens, "speculative_ms_per_token": 1e3 * s / tokens,
        "all_exact": all(r["exact"] for r in rows),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    cfg = dict(PRESETS["fast" if args.fast else "cpu"])
    for key, value in (("prompts", args.prompts), ("new_tokens", args.new_tokens), ("repeats", args.repeats)):
        if value is not None:
            cfg[key] = value
    if args.branching is not None:
        cfg["branching"] = tuple(int(k) for k in args.branching.split(",") if k.strip())
    corpus = load_corpus()
    target, t_train = trained("transformer", cfg["target"], cfg["target_steps"], 0, cfg, corpus, args.cache_dir)
    draft, d_train = trained("transformer", cfg["draft"], cfg["draft_steps"], 1, cfg, corpus, args.cache_dir)
    valid_sample = torch.as_tensor(corpus.valid[: 8 * cfg["seq_len"]]).long().reshape(8, cfg["seq_len"])
    agree_before = agreement(draft, target, valid_sample)
    tag = f"draft{cfg['draft_steps']}-target{cfg['target']['d_model']}x{cfg['target']['n_layers']}s{cfg['target_steps']}"
    draft, d_distill = distilled(draft, target, cfg, corpus, args.cache_dir, tag)
    agree_after = agreement(draft, target, valid_sample)
    ppl = {name: evaluate_perplexity(m, corpus.valid, context_len=cfg["seq_len"], max_windows=8)
           for name, m in (("target", target), ("draft", draft))}
    starts = np.linspace(0, len(corpus.valid) - cfg["prompt_len"] - 1, cfg["prompts"]).astype(int)
    prompts = [torch.as_tensor(corpus.valid[s : s + cfg["prompt_len"]])[None].long() for s in starts]
    with torch.no_grad():
        rows = [measure(target, draft, p, cfg["new_tokens"], cfg["branching"], cfg["repeats"]) for p in prompts]
        for row, p in zip(rows, prompts):  # what was generated: repetitive text is easy to draft
            row["prompt_text"] = corpus.decode(p[0])
            row["continuation_text"] = corpus.decode(greedy_generate(target, p, cfg["new_tokens"])[0])
    summary = summarize(rows)
    wall = time.perf_counter() - start

    print(f"target {count_parameters(target):,} params (perplexity {ppl['target']:.2f}), draft "
          f"{count_parameters(draft):,} params (perplexity {ppl['draft']:.2f}); branching {cfg['branching']}, "
          f"{cfg['new_tokens']} new tokens, {torch.get_num_threads()} thread(s)")
    print(f"draft's greedy token = target's on validation text: {100 * agree_before:.1f}% trained on the corpus, "
          f"{100 * agree_after:.1f}% after distillation")
    print(f"{'prompt':>6} | {'greedy s':>8} {'spec s':>8} {'speedup':>8} | {'tok/round':>9} {'passes/tok':>10}")
    for i, r in enumerate(rows):
        print(f"{i:>6} | {r['greedy_wall_s']:8.3f} {r['speculative_wall_s']:8.3f} {r['speedup_wall']:7.2f}x | "
              f"{r['mean_accepted_length']:9.2f} {r['passes_per_token']:10.3f}")
    print(f"total: greedy {summary['greedy_wall_s']:.2f} s, speculative {summary['speculative_wall_s']:.2f} s -> "
          f"{summary['speedup_wall']:.2f}x wall clock, exact output on every prompt")
    print(f"target passes per token: greedy {summary['greedy_passes_per_token']:.3f}, speculative "
          f"{summary['speculative_passes_per_token']:.3f} (commit passes: {summary['commit_passes']})")
    print("speculative time: " + ", ".join(f"{k} {100 * v:.0f}%" for k, v in summary["profile_fraction"].items()))

    if not args.no_save:
        config = {
            **{k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items()},
            "preset": "fast" if args.fast else "cpu",
            "target_params": count_parameters(target), "draft_params": count_parameters(draft),
            "target_perplexity": ppl["target"], "draft_perplexity": ppl["draft"],
            "train_seconds": {"target": t_train, "draft": d_train, "distill": d_distill},
            "draft_agreement": {"corpus_trained": agree_before, "distilled": agree_after,
                                "measured_on": f"the first {valid_sample.numel()} validation tokens, 8 windows"},
            "training": "target and draft: train_lm on the training split (AdamW, cosine); then the draft is "
                        "distilled: cross-entropy against the target's greedy tokens on distill_windows training "
                        "windows. Trained on this CPU; --cache-dir reuses trained weights, in which case "
                        "train_seconds is null",
            "summary": summary, "paper_claim": PAPER_CLAIM,
            "git_commit": git_commit(), "python": platform.python_version(), "numpy": np.__version__,
            "torch_threads": torch.get_num_threads(), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
            "load_average_before": load_before, "wall_time_s": wall,
            "corpus": {"vocab_size": corpus.vocab_size, "train_tokens": len(corpus.train),
                       "valid_tokens": len(corpus.valid)},
            "timing": "per prompt: greedy and speculative alternate `repeats` times after a warm-up; median kept; "
                      "speedup_wall = total greedy time / total speculative time",
        }
        path = bench.save_results("speculative", rows, command=shlex.join(["python", *sys.argv]),
                                  config=config, device="cpu", directory=args.out_dir)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
