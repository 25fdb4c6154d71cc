"""Commands for variational runs: nll, sample, traverse. Each checks its flags before the run is
opened, then makes one call into :mod:`aekit.api`."""

from __future__ import annotations

import argparse

from aekit.cli.common import data_flags, int_list, json_out, progress, split_flag


def cmd_nll(args: argparse.Namespace) -> int:
    from aekit.api import nll
    from aekit.tasks.generate import check_batch, check_samples

    check_samples(args.samples)
    check_batch(args.batch)

    r = nll(args.run, samples=args.samples, split=args.split, data=args.data, data_dir=args.data_dir,
            batch=args.batch, seed=args.seed, progress=progress(args))
    if args.json:
        json_out(r)
        return 0
    given = ", each given its label" if r["conditional"] else ""
    print(f"{r['data']}, {r['split']} split, {r['n']:,} samples{given}; values: {r['values']}")
    rows = [(f"NLL ({r['samples']:,} importance samples, seed {r['seed']})", r["nll"], ""),
            ("negative ELBO (one sample)", -r["elbo"], f" = reconstruction {r['recon']:.2f} + KL {r['kl']:.2f}")]
    width = max(len(name) for name, _, _ in rows)
    for name, value, extra in rows:
        print(f"  {name:<{width}}  {value:8.2f} nats{extra}")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    from aekit.api import sample
    from aekit.cli.use import wrote
    from aekit.outputs import check_count
    from aekit.tasks.generate import MAX_GENERATED, check_images_out, check_temperature

    check_count("--n", args.n, 1, MAX_GENERATED)
    check_temperature(args.temperature)
    check_images_out(args.out, args.n)

    sample(args.run, n=args.n, label=args.label, temperature=args.temperature, seed=args.seed, out=args.out)
    wrote(args, args.out)
    return 0


def cmd_traverse(args: argparse.Namespace) -> int:
    from aekit.api import traverse
    from aekit.cli.use import wrote
    from aekit.tasks.generate import check_images_out, check_traverse

    # the dimensions, and so the picture's size, are checked once the run's code size is known
    check_traverse(args.dims, args.steps, args.span)
    check_images_out(args.out, 0)

    traverse(args.run, dims=args.dims, steps=args.steps, span=args.span, label=args.label, out=args.out)
    wrote(args, args.out)
    return 0


def _json_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the result as JSON (stdout holds only JSON)")


def add_commands(sub: argparse._SubParsersAction) -> None:
    n = sub.add_parser("nll", help="importance-sampled negative log-likelihood of a VAE run, beside its ELBO")
    n.add_argument("run", metavar="DIR")
    n.add_argument("--samples", type=int, default=5000,
                   help="importance samples per data sample (5000; the estimate is the IWAE bound L_S)")
    n.add_argument("--batch", type=int, default=4096,
                   help="decoded samples per forward pass (4096): memory stays bounded whatever --samples")
    n.add_argument("--seed", type=int, default=0, help="seed of the importance samples (0)")
    data_flags(n)
    split_flag(n)
    n.add_argument("--quiet", action="store_true", help="no progress on stderr")
    _json_flag(n)
    n.set_defaults(func=cmd_nll)

    s = sub.add_parser("sample", help="decode draws from a VAE run's prior: a grid picture or a .npy array")
    s.add_argument("run", metavar="DIR")
    s.add_argument("--n", type=int, default=64, help="how many samples (64; a picture holds at most 1,024)")
    s.add_argument("--label", type=int, help="the class to draw, for a conditional VAE run")
    s.add_argument("--temperature", type=float, default=1.0,
                   help="scale of the prior's spread, above 0 and at most 10 (1; below 1: typical samples)")
    s.add_argument("--seed", type=int, default=0, help="the same seed gives the same bytes (0)")
    s.add_argument("--out", required=True, metavar="grid.png|samples.npy")
    _json_flag(s)
    s.set_defaults(func=cmd_sample)

    t = sub.add_parser("traverse", help="sweep a VAE run's latent dimensions one at a time, the others at the mean")
    t.add_argument("run", metavar="DIR")
    t.add_argument("--dims", type=int_list, metavar="0,1,2", help="latent dimensions, one line each (default: the "
                   "first 10)")
    t.add_argument("--steps", type=int, default=9, help="images per dimension, 2 to 100 (9)")
    t.add_argument("--span", type=float, default=3.0,
                   help="prior standard deviations either side of the mean, above 0 and at most 10 (3)")
    t.add_argument("--label", type=int, help="the class to decode, for a conditional VAE run")
    t.add_argument("--out", required=True, metavar="traverse.png|traverse.npy")
    _json_flag(t)
    t.set_defaults(func=cmd_traverse)
