import numpy as np
import pytest
import torch

from eznas.data import Batch
from eznas.proxies.sweet import GRID, cell_shares, find_sweet_interval, monotonicity
from eznas.spaces import get_space

CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


def test_grid_is_sweet_gradients_21_bins():
    assert len(GRID) == 22 and GRID[:4] == (0.0, 5e-10, 1e-9, 5e-9) and GRID[-3:] == (5e-1, 1.0, 5.0)
    assert list(GRID) == sorted(GRID)


def test_monotonicity_by_hand_and_empty_cells_skipped():
    shares = np.array([[0.1, 0.9], [0.2, 0.8], [np.nan, np.nan], [0.2, 0.7], [0.4, 0.6]])
    # bin 0 rises, stays, rises: (1 + 0 + 1) / 3; bin 1 falls every time
    assert monotonicity(shares) == pytest.approx([2 / 3, -1.0])


def test_find_interval_picks_the_steadiest_riser():
    rising = np.column_stack([np.linspace(0.1, 0.5, 6)] + [np.full(6, 0.01)] * 20)
    falling = rising.copy()
    falling[:, 3] = np.linspace(0.5, 0.1, 6)
    low, high, scores = find_sweet_interval([rising, falling])
    assert (low, high) == (GRID[0], GRID[1]) and scores[0] == 1.0 and scores[3] == -0.5


def test_cell_shares_on_nb201_rows_sum_to_one():
    torch.manual_seed(0)
    net = get_space("NASBench201").build(CELL, 10)
    batch = Batch(torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3]), 10)
    shares = cell_shares(net, batch)
    assert shares.shape == (17, 21)
    assert np.allclose(shares.sum(axis=1), 1.0)
    assert all(p.grad is None for p in net.parameters())
