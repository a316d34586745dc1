"""The convergence diagnostic every training run records (issue 17): probe set, criterion, storage."""

from __future__ import annotations

import math

import torch

from synthsae.sae import TrainHistory, make, train
from synthsae.sae.convergence import Convergence, probe_points


def measure(ev, recovery=None, steps=(2, 4, 6, 8, 10), n_steps=10, tol=0.01):
    recovery = list(recovery) if recovery is not None else [None] * len(ev)
    return Convergence.measure(list(steps), list(ev), recovery, [3.0] * len(ev), n_steps, tol, None, 100)


def test_the_criterion_compares_the_last_doubling_in_absolute_units():
    c = measure([0.1, 0.79, 0.805, 0.80, 0.796], [0.2, 0.9, 0.902, 0.905, 0.906])
    assert c.window == (4, 10) and math.isclose(c.ev_change, 0.006) and math.isclose(c.recovery_change, 0.006)
    assert c.converged and not c.collapsed
    still_moving = measure([0.1, 0.5, 0.7, 0.80, 0.85], [0.2, 0.9, 0.9, 0.90, 0.905])
    assert not still_moving.converged and math.isclose(still_moving.ev_change, 0.35)
    # a steady climb that the old last-fifth rule passed (0.68 -> 0.692 is 1.7% relative): the doubling sees it
    climbing = measure([0.60, 0.65, 0.68, 0.69, 0.696], [0.55, 0.64, 0.66, 0.68, 0.692])
    assert not climbing.converged and math.isclose(climbing.recovery_change, 0.052)
    collapsed = measure([-3.0, -1.0, -0.2, -0.1, -0.1])
    assert collapsed.collapsed and not collapsed.converged and collapsed.recovery is None
    one_point = measure([0.9], steps=(10,))
    assert not one_point.converged and math.isnan(one_point.ev_change)


def test_the_window_ends_where_the_lr_starts_to_decay():
    steps = [100 * i for i in range(1, 11)]
    # flat at constant lr, then the decay tail lifts EV by 0.015 (a longer run gets that lift too): converged
    annealed_ev = [0.5, 0.8, 0.84, 0.85, 0.851, 0.852, 0.852, 0.853, 0.860, 0.868]
    annealed = Convergence.measure(steps, annealed_ev, [0.9] * 10, [4.0] * 10, 1000, 0.01, None, 100,
                                   lr_decay_steps=200)
    assert annealed.window == (400, 800) and annealed.decay_start == 800
    assert annealed.converged and math.isclose(annealed.ev_change, 0.003) and annealed.ev == 0.868
    assert "before the lr decay" in annealed.summary()
    # the same curve judged over the whole run's last doubling is not converged (the old window)
    assert not Convergence.measure(steps, annealed_ev, [0.9] * 10, [4.0] * 10, 1000, 0.01, None, 100).converged
    # still climbing before the decay: not converged, however flat the tail
    climbing = Convergence.measure(steps, [0.5, 0.6, 0.7, 0.75, 0.78, 0.80, 0.82, 0.84, 0.841, 0.841],
                                   [0.9] * 10, [4.0] * 10, 1000, 0.01, None, 100, lr_decay_steps=200)
    assert not climbing.converged and math.isclose(climbing.ev_change, 0.09)
    # a decay over more than half of the run leaves no constant-lr stretch: the whole run's last doubling
    long_decay = Convergence.measure(steps, annealed_ev, [0.9] * 10, [4.0] * 10, 1000, 0.01, None, 100,
                                     lr_decay_steps=600)
    assert long_decay.window == (500, 1000) and long_decay.decay_start is None and not long_decay.converged
    # a record written before decay_start existed still loads
    old = {k: v for k, v in annealed.to_dict().items() if k != "decay_start"}
    assert Convergence.from_dict(old).decay_start is None


def test_summary_is_one_line_with_the_verdict():
    c = measure([0.1, 0.79, 0.805, 0.80, 0.81], [0.2, 0.9, 0.902, 0.905, 0.905])
    line = c.summary()
    assert "\n" not in line and "recovery 0.905" in line
    assert line.startswith("not converged: probe EV 0.81 (changed 0.02 over steps 4-10)")
    c = measure([0.1, 0.79, 0.805, 0.80, 0.796], [0.2, 0.9, 0.902, 0.905, 0.906])
    assert c.summary().startswith("converged: probe EV 0.796 (changed 0.006 over steps 4-10)")
    assert measure([-3.0, -1.0, -0.2, -0.1, -0.1]).summary().startswith("collapsed")
    assert Convergence.from_dict(c.to_dict()) == c


def test_probe_points_end_at_the_last_step():
    assert probe_points(1000, 10) == list(range(100, 1001, 100))
    assert probe_points(3, 10) == [1, 2, 3] and probe_points(5, 0) == []
    assert probe_points(1000, 10, 750) == [100, 200, 300, 375, 400, 500, 600, 700, 750, 800, 900, 1000]
    assert probe_points(1000, 10, 1000) == probe_points(1000, 10)


def test_every_run_records_it_and_it_survives_save_and_load(small_world, tmp_path):
    h = train(make("topk", 16, 32, k=3), small_world, 64 * 50, 64, lr=3e-3, progress=False, probe_samples=1000)
    assert h.probe_steps == list(range(5, 51, 5)) and len(h.probe_ev) == len(h.probe_recovery) == 10
    c = h.convergence_result()
    assert c.window == (25, 50) and c.probe_samples == 1000 and c.ev == h.probe_ev[-1]
    assert 0 < c.recovery <= 1 and c.l0 == 3.0  # the stand-in world has a dictionary; topk fires exactly k
    assert h.explained_variance[-1] > 0.5 and abs(c.ev - h.explained_variance[-1]) < 0.1
    h.save(tmp_path)
    back = TrainHistory.load(tmp_path)
    assert back.convergence_result() == c and back.summary() == h.summary()


def test_a_decaying_run_is_judged_before_its_decay(small_world):
    h = train(make("topk", 16, 32, k=3), small_world, 64 * 50, 64, lr=3e-3, lr_decay_steps=10, progress=False,
              probe_samples=1000)
    c = h.convergence_result()
    assert 20 in h.probe_steps and 40 in h.probe_steps and h.probe_steps[-1] == 50
    assert c.window == (20, 40) and c.decay_start == 40 and c.ev == h.probe_ev[-1]
    i, j = h.probe_steps.index(20), h.probe_steps.index(40)
    assert math.isclose(c.ev_change, abs(h.probe_ev[j] - h.probe_ev[i]))


def test_the_probe_does_not_change_training(small_world):
    a, b = make("relu_l1", 16, 32), make("relu_l1", 16, 32)
    ha = train(a, small_world, 64 * 20, 64, progress=False)
    hb = train(b, small_world, 64 * 20, 64, progress=False, probe_evals=0)
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
    assert ha.explained_variance == hb.explained_variance
    assert hb.convergence is None and "no convergence diagnostic" in hb.summary()


def test_a_collapsed_run_is_reported(make_world):
    h = train(make("relu_l1", 16, 512), make_world(), 64 * 10, 64, lr=1e-9, progress=False)
    c = h.convergence_result()
    assert c.collapsed and not c.converged and c.ev < 0


def test_a_world_without_a_dictionary_has_no_recovery(make_world):
    world = make_world()

    class NoDictionary:
        d, m = world.d, world.m

        def sample(self, n, seed=0, device=None, dtype=torch.float32):
            return world.sample(n, seed=seed, device=device, dtype=dtype)

    h = train(make("topk", 16, 32, k=3), NoDictionary(), 64 * 10, 64, progress=False)
    assert h.probe_recovery == [None] * 10 and h.convergence_result().recovery is None
