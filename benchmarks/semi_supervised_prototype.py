"""Semi-supervised GAN on MNIST with 100 labels: a plain loop that sizes the study.

    OMP_NUM_THREADS=1 taskset -c 0 python benchmarks/semi_supervised_prototype.py \\
        --data-dir ../shared/data --seed 0 --max-minutes 40
    ... --supervised-only --max-minutes 10   # the same D on the 100 labels alone

Trains as ``openai/improved-gan``'s ``train_mnist_feature_matching.py`` does, with
ganlib's networks (``ganlib.models.semi_supervised``) and losses
(``ganlib.tasks.semi_supervised``), not the Trainer. Each step: a labelled batch (the
labelled set tiled to the epoch's length, each tile reshuffled), an unlabelled batch
and fresh fakes train D on ``supervised + unsupervised``; then G on feature matching
against a second, independently shuffled unlabelled batch. Adam (lr 3e-3, betas
(0.5, 0.999)) for both, with eps 1e-4: the reference's Adam divides by
``sqrt(v + 1e-8)``, not ``sqrt(v) + 1e-8``, which damps the steps of parameters whose
gradients are below ~1e-4 (most of the generator's at the start); PyTorch's eps 1e-4
gives the same step within a factor sqrt(2) (``--adam-eps 1e-8`` is PyTorch's default).
D's data-dependent initialisation runs on 500 training images. An exponential average of
D's parameters (decay 0.9999, the reference's 0.0001 rate) is evaluated: the reference's
starts at zero and is used as it is; here it is divided by ``1 - decay^t`` (the weighted
mean of the past parameters), which the reference's becomes as ``t`` grows.

After every epoch (600 steps) it prints the epoch's wall and CPU seconds and the test
error on the 10,000 test images of the live D and of the averaged D (noise off).
``--supervised-only`` trains the same D on the labelled batches alone (no G, no
unlabelled loss), the baseline.
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import sys
import time
from pathlib import Path

import torch
from torch import Tensor, nn

from ganlib.data import load_mnist
from ganlib.data.labels import choose_labelled, fingerprint
from ganlib.models.semi_supervised import (
    SemiSupervisedDiscriminator,
    SemiSupervisedGenerator,
    initialise_from_batch,
)
from ganlib.tasks.semi_supervised import (
    feature_matching_loss,
    supervised_loss,
    unsupervised_loss,
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=os.environ.get("GANLIB_DATA", "./data"))
    parser.add_argument("--seed", type=int, default=0, help="weights, noise and data order")
    parser.add_argument("--label-seed", type=int, help="choice of labels (default: --seed)")
    parser.add_argument("--labels", type=int, default=100, help="labelled examples in all")
    parser.add_argument("--epochs", type=int, default=300, help="the reference's 300")
    parser.add_argument("--max-minutes", type=float, default=40.0, help="stop before this")
    parser.add_argument("--steps-per-epoch", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--adam-eps", type=float, default=1e-4, help="see the docstring")
    parser.add_argument("--ema-decay", type=float, default=0.9999)
    parser.add_argument("--unlabelled-weight", type=float, default=1.0)
    parser.add_argument("--supervised-only", action="store_true", help="the baseline")
    parser.add_argument("--save", type=Path, help="write the averaged D's state_dict here")
    args = parser.parse_args(argv)
    if args.label_seed is None:
        args.label_seed = args.seed
    return args


@torch.no_grad()
def test_errors(model: nn.Module, images: Tensor, labels: Tensor, chunk: int = 2000) -> int:
    """Misclassified test images, model in eval mode (no noise)."""
    model.eval()
    wrong = 0
    for start in range(0, len(images), chunk):
        logits = model(images[start : start + chunk]).logits
        wrong += int((logits.argmax(dim=1) != labels[start : start + chunk]).sum())
    model.train()
    return wrong


def epoch_orders(
    n_labelled: int, n_unlabelled: int, length: int, rng: torch.Generator
) -> tuple[Tensor, Tensor, Tensor]:
    """One epoch's labelled order (the set tiled, each tile reshuffled) and two
    independent unlabelled orders (reshuffled whenever a pass is used up)."""

    def tiled(n: int) -> Tensor:
        tiles = [torch.randperm(n, generator=rng) for _ in range(math.ceil(length / n))]
        return torch.cat(tiles)[:length]

    return tiled(n_labelled), tiled(n_unlabelled), tiled(n_unlabelled)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.manual_seed(args.seed)  # weights and the noise layers' draws
    data_rng = torch.Generator().manual_seed(args.seed)
    train_x, train_y = load_mnist(args.data_dir, "train", download=False)
    test_x, test_y = load_mnist(args.data_dir, "test", download=False)
    chosen = choose_labelled(train_y, args.labels, args.label_seed)
    labelled_x, labelled_y = train_x[chosen], train_y[chosen]
    batch, steps = args.batch_size, args.steps_per_epoch
    mode = "supervised-only" if args.supervised_only else "semi-supervised"
    print(
        f"# {mode}: seed {args.seed}, {args.labels} labels (seed {args.label_seed}, "
        f"fingerprint {fingerprint(chosen)}, per class {torch.bincount(labelled_y).tolist()}), "
        f"{len(train_x)} unlabelled, batch {batch}, {steps} steps/epoch, lr {args.lr}, "
        f"adam eps {args.adam_eps}, ema {args.ema_decay}, torch {torch.__version__}, "
        f"threads {torch.get_num_threads()}",
        flush=True,
    )

    discriminator = SemiSupervisedDiscriminator()
    generator = SemiSupervisedGenerator()
    init_batch = train_x[torch.randperm(len(train_x), generator=data_rng)[:500]]
    initialise_from_batch(discriminator, init_batch)
    d_params = [p for p in discriminator.parameters() if p.requires_grad]
    adam = {"lr": args.lr, "betas": (0.5, 0.999), "eps": args.adam_eps}
    d_optimizer = torch.optim.Adam(d_params, **adam)
    g_optimizer = torch.optim.Adam(generator.parameters(), **adam)
    all_d_params = list(discriminator.parameters())
    average = [torch.zeros_like(p) for p in all_d_params]  # the reference's: from zero
    averaged = copy.deepcopy(discriminator)

    def evaluate(step: int) -> tuple[int, int]:
        live = test_errors(discriminator, test_x, test_y)
        if step == 0:
            return live, live
        with torch.no_grad():
            debias = 1.0 - args.ema_decay**step
            for target, mean in zip(averaged.parameters(), average, strict=True):
                target.copy_(mean / debias)
        return live, test_errors(averaged, test_x, test_y)

    def percent(wrong: int) -> float:
        return 100.0 * wrong / len(test_x)

    live, avg = evaluate(0)
    print(f"epoch 0 (after init): err_live {percent(live):.2f}% err_avg {percent(avg):.2f}%")
    print(
        "epoch  wall_s  cpu_s  eval_s  loss_lab  loss_unl  loss_gen  train_err  "
        "err_live  err_avg  elapsed_min",
        flush=True,
    )
    start, step = time.perf_counter(), 0
    for epoch in range(1, args.epochs + 1):
        wall0, cpu0 = time.perf_counter(), time.process_time()
        lab_order, unl_order, unl_order2 = epoch_orders(
            len(labelled_x), len(train_x), steps * batch, data_rng
        )
        sums = torch.zeros(4)  # loss_lab, loss_unl, loss_gen, train errors
        for t in range(steps):
            window = slice(t * batch, (t + 1) * batch)
            x_lab, y_lab = labelled_x[lab_order[window]], labelled_y[lab_order[window]]
            # D: labelled, unlabelled and fresh fakes in one pass (D is per-example).
            if args.supervised_only:
                logits_lab = discriminator(x_lab).logits
                loss_lab = supervised_loss(logits_lab, y_lab)
                loss_unl = torch.zeros(())
            else:
                x_unl = train_x[unl_order[window]]
                with torch.no_grad():
                    fake = generator(generator.sample_latents(batch))
                logits = discriminator(torch.cat([x_lab, x_unl, fake])).logits
                logits_lab, logits_unl, logits_fake = logits.split(batch)
                loss_lab = supervised_loss(logits_lab, y_lab)
                loss_unl = unsupervised_loss(logits_unl, logits_fake)
            d_optimizer.zero_grad(set_to_none=True)
            (loss_lab + args.unlabelled_weight * loss_unl).backward()
            d_optimizer.step()
            step += 1
            with torch.no_grad():
                torch._foreach_lerp_(average, all_d_params, 1.0 - args.ema_decay)
            loss_gen = torch.zeros(())
            if not args.supervised_only:
                # G: feature matching against a second unlabelled batch; D frozen.
                x_unl2 = train_x[unl_order2[window]]
                for p in d_params:
                    p.requires_grad_(False)
                features_fake = discriminator(generator(generator.sample_latents(batch))).features
                with torch.no_grad():
                    features_real = discriminator(x_unl2).features
                loss_gen = feature_matching_loss(features_real, features_fake)
                g_optimizer.zero_grad(set_to_none=True)
                loss_gen.backward()
                g_optimizer.step()
                for p in d_params:
                    p.requires_grad_(True)
            with torch.no_grad():
                wrong = (logits_lab.argmax(dim=1) != y_lab).float().mean()
                sums += torch.stack([loss_lab, loss_unl, loss_gen, wrong]).detach()
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        eval0 = time.perf_counter()
        live, avg = evaluate(step)
        eval_s = time.perf_counter() - eval0
        means = (sums / steps).tolist()
        elapsed = (time.perf_counter() - start) / 60
        print(
            f"{epoch:5d} {wall:7.1f} {cpu:6.1f} {eval_s:7.2f} {means[0]:9.4f} {means[1]:9.4f} "
            f"{means[2]:9.4f} {means[3]:10.4f} {percent(live):8.2f}% {percent(avg):7.2f}% "
            f"{elapsed:11.1f}",
            flush=True,
        )
        if not all(math.isfinite(m) for m in means[:3]):
            print("# stopped: a loss is not finite")
            break
        if elapsed + (wall + eval_s) / 60 > args.max_minutes:
            print(f"# stopped: the next epoch would pass --max-minutes {args.max_minutes}")
            break
    if args.save is not None:
        torch.save(averaged.state_dict(), args.save)
        print(f"# averaged D written to {args.save}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
