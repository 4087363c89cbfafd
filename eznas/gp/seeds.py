"""Hand-made proxies written as programs: they seed the population and serve as baselines."""
from __future__ import annotations

SEEDS: dict[str, str] = {
    # EZNAS's published 'darts' program (NeurIPS 2022): per unit ||sigmoid(logdet(sign(dR/d block input)))||_F
    "eznas": "mean_units(fro(sigmoid(logdet(sign(inp_grad_D)))))",
    # SWAP (ICLR 2024): distinct sample-wise patterns of the conv inputs (the units' ReLU outputs)
    "swap": "swap_units(pre_D)",
    # reg-SWAP (ICLR 2024): SWAP x exp(-(P - mu)^2 / sigma), P in thousands, mu = 1000, sigma = 1e6 (the
    # reg_swap proxy's defaults); with P in millions that is exp(-(params - 1)^2)
    "reg_swap": "net_mul(swap_units(pre_D), net_exp(net_neg(net_mul(net_shift(params, -1.0), "
                "net_shift(params, -1.0)))))",
    # Sweetimator (Neural Networks 2023): weights with |gradient| in NB-201's interval [1e-4, 5e-4)
    "sweetimator": "sum_units(count_in(weight_grad_D, 0.0001, 0.0005))",
    # MeCo (NeurIPS 2023): smallest eigenvalue of the channel correlation of a noise input's feature maps,
    # here summed over the units' conv inputs (MeCo: over every module with a 4-D output, one 64x64 image)
    "meco": "sum_units(corr_min_eig(pre_N))",
    # the parameter count (in millions): the baseline every proxy must beat
    "params": "params",
}
