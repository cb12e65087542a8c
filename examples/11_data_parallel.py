# Run: python examples/11_data_parallel.py
# or on 2 processes:  mpiexec -n 2 python examples/11_data_parallel.py
"""Data-parallel training with ``tn.distributed``: the same script on one process or on many.

Every rank builds the same model from the same seed (``broadcast_parameters`` makes sure),
then draws its own dropout masks (``seed_per_rank``). Each epoch, every rank trains on its own
shard of the same shuffled order (``DistributedSampler``), and ``DistributedOptimizer`` averages
the ranks' gradients before each update, so all ranks take the same step: the one a single
process would take on the global batch of ``ranks x 32`` samples. ``fit`` averages the loss
and metrics over all ranks' samples and prints on rank 0 only. Expected: a test accuracy above
0.9 and, with several ranks, bitwise identical weights on every rank.
"""

import argparse
import hashlib

import tinynet as tn
import tinynet.distributed as dist


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32, help="per rank")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    dist.init_process_group("auto")  # "local" as one plain process, "mpi" under mpiexec
    rank, world = dist.get_rank(), dist.get_world_size()
    x, y = tn.datasets.digits().tensors
    data = tn.data.TensorDataset((x - 0.3) / 0.37, y)  # roughly standardised pixels
    train_set, test_set = tn.data.random_split(data, [0.8, 0.2], seed=args.seed)  # same on all

    tn.manual_seed(args.seed)  # the same initial weights on every rank...
    model = tn.models.mlp(in_features=64, hidden=(128, 64), num_classes=10, dropout=0.1)
    dist.broadcast_parameters(model, src=0)  # ...guaranteed: rank 0's
    dist.seed_per_rank(args.seed)  # from here on, each rank its own dropout masks
    optimizer = dist.DistributedOptimizer(tn.optim.Adam(model.parameters(), lr=2e-3))

    sampler = tn.data.DistributedSampler(train_set, seed=args.seed)  # fit calls set_epoch
    train_loader = tn.data.DataLoader(train_set, batch_size=args.batch_size, sampler=sampler)
    # Evaluation: every rank scores every world-th test sample; evaluate sums over the ranks.
    test_shard = tn.data.Subset(test_set, range(rank, len(test_set), world))
    test_loader = tn.data.DataLoader(test_shard, batch_size=256)
    if rank == 0:
        print(f"{world} rank(s): {len(sampler)} of the {len(train_set)} training samples per rank "
              f"and epoch; {args.batch_size} per rank = {args.batch_size * world} per step")

    history = tn.train.fit(model, tn.nn.CrossEntropyLoss(), optimizer, train_loader,
                           epochs=args.epochs, val_loader=test_loader, progress=False)
    test = tn.train.evaluate(model, test_loader, tn.nn.CrossEntropyLoss())  # every rank calls it
    weights = b"".join(p.numpy().tobytes() for p in model.parameters())
    checksums = dist.all_gather_object(hashlib.sha256(weights).hexdigest())
    if rank == 0:
        last = history.epochs[-1]
        print(f"epoch {last['epoch']}: loss {last['loss']:.4f}, "
              f"{last['samples_per_s']:,.0f} samples/s over all ranks")
        print(f"test accuracy {test['accuracy']:.4f} on {len(test_set)} samples")
        print(f"weights identical on every rank: {len(set(checksums)) == 1}")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
