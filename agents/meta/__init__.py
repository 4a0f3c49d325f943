"""Meta-training: evolution strategies and backprop meta-optimisers for any learner with meta-parameters.

Pieces (each a small module, imported on demand so that ``vsml-bench --help`` stays fast):

* :mod:`.objective`: ``Objective`` / ``TaskGroup``: a mixture of task families, each a pure
  ``loss_fn(meta_params, key, data)``; :func:`~.objective.allocate` splits a batch by shares.
* :mod:`.tasks`: ``TaskFamily`` (env ID + options), ``build_objective`` (online cross-entropy
  over the scored steps of an env stream), ``build_evaluator`` (held-out accuracy).
* :mod:`.es`: ``es_gradient`` (antithetic pairs, each pair on its own task, optional centred
  ranks, population sharded over a ``jax.sharding.Mesh``).
* :mod:`.bptt`: ``bptt_gradient`` (full or truncated backprop through the stream),
  ``remat_learner``, ``truncate_learner``, ``bptt_optimizer`` (clipping + Adam).
* :mod:`.loop`: ``TrainConfig`` and ``train`` (JSONL metrics, held-out evaluation, atomic
  msgpack checkpoints; resuming is bit-identical).
* :mod:`.presets`: ``quick``, ``paper-small``, ``paper``.
* :mod:`.cli` (``vsml-bench train``), :mod:`.plot` (``vsml-bench plot``), :mod:`.export`
  (a run's best meta-parameters → shipped msgpack + model card), :mod:`.compare` (a VSML
  against tuned online SGD/Adam on the same streams).

Example (a custom task mix, ES, 200 steps)::

    from vsml_bench import agents
    from vsml_bench.agents.meta.loop import TrainConfig, train
    from vsml_bench.agents.meta.tasks import TaskFamily, build_objective

    learner = agents.make("vsml")
    families = [TaskFamily("vsml_bench/OnlineDigits-v0", {"stream_length": 50}, 0.5),
                TaskFamily("vsml_bench/OnlineDigits-v0",
                           {"stream_length": 50, "projection": True}, 0.5)]
    objective, spec = build_objective(learner, families)
    train(learner, spec, objective, TrainConfig(steps=200, n_pairs=32), "runs/mine")
"""
