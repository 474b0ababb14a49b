r"""Scenario 3: a convolutional energy on images -- scikit-learn's 8x8 digits (embedded,
the default) or MNIST from a root directory -- trained by contrastive divergence.

Default recipe: short-run, non-persistent chains (Nijkamp et al. 2019): every
iteration starts its negatives from uniform noise on the data range
(``ReplayBuffer(..., reinit_prob=1)``) and runs 40 ULA steps
x <- clamp(x - 10 clip(grad E, 0.03) + 0.005 z) (the step, noise and clipping of Du &
Mordatch 2019 as in Lippe's UvA tutorial, i.e. temperature 1.25e-6; for another pixel
range of half-width s the same moves mapped affinely: step 10 s^2, noise 0.005 s, clip
0.03 / s); alpha = 0.1; Adam with beta1 = 0. The model's samples are then new 40-step chains from noise, the same
sampler. ``--reinit-prob 0.05`` gives the persistent recipe of Du & Mordatch instead
(whose chains from noise do not produce digits; its buffer does).

Outputs in ``--out``: ``samples.png`` (fresh chains from noise, the replay buffer, a
Gaussian mixture, real images), ``loss.png`` (loss and energy gap per iteration),
``energy.pt`` (the trained energy with its sampler settings, for
``pyro_langevin.ebm.load_energy``), ``checkpoint.pt`` (the trainer state, for
``--resume``) and ``scores.json``. Printed: the Fréchet distance in the features of a
small classifier trained on the training split, against one half of the held-out
images, for model samples, for the other held-out half (the floor) and for a
10-component Gaussian mixture fitted to the training images (the baseline); and the
median distance from each image to its nearest training image (memorisation shows as
distances well below the held-out ones).

    python examples/ebm_digits.py                        # 8x8 digits, ~4 min on one core
    python examples/ebm_digits.py --iterations 8000      # longer
    python examples/ebm_digits.py --value-range 0 1 --out outputs/ebm_digits01   # pixels in [0, 1]
    python examples/ebm_digits.py --dataset mnist --root /path/with/MNIST/raw --max-train 20000 \
        --iterations 2000 --classifier-epochs 3 --out outputs/ebm_mnist

Measured on one core (Fréchet distance: mean ± sd over 3 feature classifiers; NN: median
distance to the nearest training image, in pixel units of the range):

- digits, defaults (228 s of training): held-out real (floor) 26.7 ± 4.2 (NN 2.11); EBM
  fresh chains 25.2 ± 4.5 (NN 2.88); EBM replay buffer 27.5 ± 5.5 (2.93); Gaussian
  mixture 61.9 ± 15.1 (2.37).
- digits, ``--value-range 0 1``: floor 26.7 ± 4.2; EBM fresh chains 45.1 ± 8.6; buffer
  48.2 ± 10.3; Gaussian mixture 61.3 ± 16.1.
- MNIST from ``/work/shared/data``, 20000 training images, 2000 iterations (435 s of
  training, 471 s in all), 1000 images per score: floor 3.3 ± 0.2 (NN 9.24); EBM fresh
  chains 25.6 ± 2.9 (12.24); buffer 23.9 ± 1.9 (12.37); Gaussian mixture 69.8 ± 8.4 (10.79).

The samples sit farther from their nearest training image than held-out digits do: no
memorisation.
"""
import argparse
import json
import time
from pathlib import Path

import torch

from pyro_langevin import ULA
from pyro_langevin.datasets import digits_split, load_mnist
from pyro_langevin.ebm import ContrastiveDivergence, ConvEnergy, ReplayBuffer, fit, run_chains, save_energy
from pyro_langevin.ebm.evaluation import (accuracy, features, frechet_distance, gaussian_mixture_samples,
                                          nearest_neighbour_distance, train_classifier)


def load(args):
    value_range = tuple(args.value_range)
    if args.dataset == "digits":
        return digits_split(value_range=value_range)
    if args.root is None:
        raise SystemExit("--dataset mnist needs --root (the directory holding MNIST/raw/)")
    x_train, y_train = load_mnist(args.root, train=True, value_range=value_range, max_items=args.max_train)
    x_test, y_test = load_mnist(args.root, train=False, value_range=value_range, max_items=args.max_test)
    return x_train, x_test, y_train, y_test


def save_pngs(out, history, grids):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from torchvision.utils import make_grid

    fig, axes = plt.subplots(1, len(grids), figsize=(4 * len(grids), 4.3))
    for ax, (title, images, value_range) in zip(axes, grids):
        grid = make_grid(images[:64].cpu().float(), nrow=8, normalize=True, value_range=value_range, pad_value=1.0)
        ax.imshow(grid.permute(1, 2, 0).numpy(), interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.savefig(out / "samples.png", dpi=120, bbox_inches="tight")
    fig, ax = plt.subplots(figsize=(6, 3.5))
    it = torch.tensor([float(h["iteration"]) for h in history])
    window = max(1, len(history) // 50)
    for key, label, colour in (("loss", "loss", "C0"), ("energy_gap", "energy gap E(neg) - E(data)", "C1")):
        values = torch.tensor([h[key] for h in history])
        smooth = values.unfold(0, window, 1).mean(1) if len(values) >= window else values
        ax.plot(it, values, lw=0.3, alpha=0.3, color=colour)
        ax.plot(it[window - 1:], smooth, lw=1.2, color=colour, label=f"{label} (running mean of {window})")
    ax.set_xlabel("iteration")
    ax.legend()
    fig.savefig(out / "loss.png", dpi=120, bbox_inches="tight")


def main(args):
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    x_train, x_test, y_train, y_test = load(args)
    value_range = tuple(args.value_range)
    shape = tuple(x_train.shape[1:])
    print(f"{args.dataset}: {x_train.shape[0]} training and {x_test.shape[0]} held-out images {shape} in {value_range}")

    # the recipe's lambda, sigma and clip are for [-1, 1]; for a range of half-width s the same
    # chains, mapped affinely, have lambda * s^2, sigma * s and clip / s (the same temperature)
    s = (value_range[1] - value_range[0]) / 2
    args.step_size = args.step_size or 10.0 * s**2
    args.noise_scale = args.noise_scale or 0.005 * s
    args.grad_clip = args.grad_clip or 0.03 / s
    energy = ConvEnergy(shape)
    kernel = ULA(step_size=args.step_size, noise_scale=args.noise_scale, grad_clip=args.grad_clip, clamp=value_range)
    buffer = ReplayBuffer(args.buffer_size, shape, reinit_prob=args.reinit_prob, init="uniform", init_range=value_range)
    cd = ContrastiveDivergence(kernel, args.num_steps, buffer, alpha=args.alpha)
    optimizer = torch.optim.Adam(energy.parameters(), lr=args.lr, betas=(0.0, 0.999))
    print(f"ULA step_size={args.step_size}, noise_scale={args.noise_scale} -> temperature {kernel.temperature:.3g}; "
          f"{args.num_steps} steps, grad_clip={args.grad_clip}, clamp={value_range}")
    t0 = time.perf_counter()
    decay_at = int(args.lr_decay_at * args.iterations)  # a calmer last stretch: the final sampler is less erratic
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda t: 1.0 if t < decay_at else 0.1)
    trainer = fit(energy, x_train, cd, optimizer, args.iterations, args.batch_size, resume=args.resume,
                  scheduler=scheduler,
                  progress=not args.no_progress, checkpoint_path=out / "checkpoint.pt",
                  checkpoint_every=args.checkpoint_every, max_grad_norm=args.max_grad_norm,
                  metadata={"value_range": value_range, "dataset": args.dataset})
    train_seconds = time.perf_counter() - t0
    save_energy(out / "energy.pt", energy, value_range=value_range, dataset=args.dataset,
                step_size=args.step_size, noise_scale=args.noise_scale, grad_clip=args.grad_clip,
                num_steps=args.num_steps)
    print(f"trained {trainer.iteration} iterations in {train_seconds:.0f} s "
          f"({train_seconds / max(len(trainer.history), 1):.2f} s/iteration this run)")

    # ---------------------------------------------------------------- evaluation
    t0 = time.perf_counter()
    half = x_test.shape[0] // 2
    held_a, held_b = x_test[:half], x_test[half: 2 * half]
    num = held_a.shape[0]
    args.sample_steps = args.sample_steps or args.num_steps
    fresh, stats = run_chains(energy, kernel, buffer.noise(num), args.sample_steps)
    persistent = buffer.storage[torch.randperm(len(buffer))[:num]]
    gmm = gaussian_mixture_samples(x_train, num, n_components=10, seed=args.seed, value_range=value_range,
                                   max_fit_images=args.gmm_max_fit)
    rows = [("held-out real (floor)", held_a), (f"EBM, fresh chains ({args.sample_steps} steps from noise)", fresh),
            ("EBM, replay buffer (last training negatives)", persistent), ("Gaussian mixture, 10 components", gmm)]
    # the classifiers see images mapped to [-1, 1], so scores compare across pixel ranges; the
    # Fréchet distance depends on the feature network, so report its spread over several
    low, high = value_range
    canonical = lambda x: (x - low) * (2.0 / (high - low)) - 1.0  # noqa: E731
    fds, accuracies = {name: [] for name, _ in rows}, []
    for seed in range(args.classifier_seeds):
        classifier = train_classifier(canonical(x_train), y_train, epochs=args.classifier_epochs, seed=seed)
        accuracies.append(accuracy(classifier, canonical(x_test), y_test))
        feat_b = features(classifier, canonical(held_b))
        for name, images in rows:
            fds[name].append(frechet_distance(features(classifier, canonical(images)), feat_b))
    print(f"\n{args.classifier_seeds} feature classifiers, held-out accuracy {min(accuracies):.3f} to "
          f"{max(accuracies):.3f}; Fréchet distance (mean ± sd over the classifiers) against the other "
          f"{held_b.shape[0]} held-out images, {num} images each; nearest-neighbour distances in pixel units of "
          f"{value_range}:\n")
    print("| images | Fréchet distance | median NN distance to training set |")
    print("|---|---|---|")
    scores = {}
    for name, images in rows:
        fd = torch.tensor(fds[name])
        nn_dist = float(nearest_neighbour_distance(images, x_train).median())
        scores[name] = {"frechet": fds[name], "median_nn": nn_dist}
        spread = f" ± {float(fd.std()):.1f}" if len(fd) > 1 else ""
        print(f"| {name} | {float(fd.mean()):.1f}{spread} | {nn_dist:.2f} |")
    print(f"\n(evaluation {time.perf_counter() - t0:.0f} s; fresh chains: mean grad norm {stats['grad_norm']:.3g}, "
          f"{stats['diverging']} non-finite steps)")
    save_pngs(out, trainer.history, [("EBM: fresh chains from noise", fresh, value_range),
                                     ("EBM: replay buffer", persistent, value_range),
                                     ("Gaussian mixture", gmm, value_range), ("real (held out)", held_a, value_range)])
    (out / "scores.json").write_text(json.dumps({"args": {k: v for k, v in vars(args).items()}, "scores": scores,
                                                 "train_seconds": train_seconds}, indent=1))
    print(f"saved {out}/samples.png, loss.png, energy.pt, checkpoint.pt, scores.json")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=["digits", "mnist"], default="digits")
    parser.add_argument("--root", default=None, help="MNIST root directory (holding MNIST/raw/)")
    parser.add_argument("--max-train", type=int, default=None, help="MNIST: random training subset of this size")
    parser.add_argument("--max-test", type=int, default=2000, help="MNIST: random held-out subset of this size")
    parser.add_argument("--value-range", type=float, nargs=2, default=[-1.0, 1.0])
    parser.add_argument("--iterations", type=int, default=2500)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--num-steps", type=int, default=40, help="Langevin steps per negative")
    parser.add_argument("--step-size", type=float, default=None,
                        help="lambda in x - lambda clip(grad E) + sigma z (default 10 on [-1, 1], scaled to the range)")
    parser.add_argument("--noise-scale", type=float, default=None, help="sigma (default 0.005 on [-1, 1], scaled)")
    parser.add_argument("--grad-clip", type=float, default=None, help="clip (default 0.03 on [-1, 1], scaled)")
    parser.add_argument("--alpha", type=float, default=0.1)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--lr-decay-at", type=float, default=0.8,
                        help="fraction of the iterations after which the learning rate is divided by 10")
    parser.add_argument("--max-grad-norm", type=float, default=None)
    parser.add_argument("--buffer-size", type=int, default=8192)
    parser.add_argument("--reinit-prob", type=float, default=1.0,
                        help="1: short-run chains from noise; 0.05: persistent chains (Du & Mordatch)")
    parser.add_argument("--sample-steps", type=int, default=None,
                        help="steps of the fresh evaluation chains (default: --num-steps)")
    parser.add_argument("--classifier-epochs", type=int, default=20)
    parser.add_argument("--classifier-seeds", type=int, default=3, help="feature classifiers to average over")
    parser.add_argument("--gmm-max-fit", type=int, default=5000, help="fit the mixture to at most this many images")
    parser.add_argument("--checkpoint-every", type=int, default=100)
    parser.add_argument("--resume", action="store_true", help="continue from --out/checkpoint.pt if present")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="outputs/ebm_digits")
    parser.add_argument("--no-progress", action="store_true")
    main(parser.parse_args())
