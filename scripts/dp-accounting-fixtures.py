#!/usr/bin/env python3
"""Writes tests/fixtures/dp-accounting.json: reference values for tests/privacy-accountants.test.ts.

Run once by hand where Google's `dp-accounting` (PyPI, with numpy/scipy) is installed; CI never
installs Python packages, the JSON is committed:

    pip install dp-accounting
    python3 scripts/dp-accounting-fixtures.py          # writes tests/fixtures/dp-accounting.json

What each block is checked against:
- rdp: Google's RDP accountant for the Poisson-subsampled Gaussian (the same series as Opacus's
  `analysis/rdp.py`, Mironov et al. 2019) on Opacus's default orders; `improved` is its
  RDP->(eps, delta) conversion (Balle et al. 2020, the one Opacus's `get_privacy_spent` uses),
  `classic` the min over orders of rdp - log(delta)/(order-1) (Mironov 2017, TF-Privacy's tutorial).
  `orders` holds single-step RDP values at a few integer and fractional orders, computed
  independently of any series: A_alpha = E_{x~N(0,s^2)}[((1-q) + q exp((2x-1)/(2s^2)))^alpha] by
  mpmath quadrature at 30 digits (Mironov et al. 2019, Sec. 3.1), RDP = log(A_alpha)/(alpha-1).
  Orders Google's series leaves out (it gives up after 1000 terms) are stored as null.
- gaussianExact: q = 1 (no subsampling), T steps = one Gaussian of sigma/sqrt(T); the exact
  (eps, delta) curve of Balle & Wang 2018, solved with brentq. The tightest possible answer, which
  the PRV accountant's [lower, upper] must contain.
- pld: Google's PLD accountant (connect-the-dots, add-or-remove, interval 1e-4): a numerical
  accountant of the same kind as PRV (Gopi et al. 2021), for subsampled cases.
- gdp: Opacus's `analysis/gdp.py` formulas (Bu et al. 2020, Dong et al.) with scipy.
- logErfc: log(erfc(x)) by mpmath at 40 digits, for the accountants' special function.
"""
import json
import math
import os

import mpmath
import numpy as np
from scipy import optimize
from scipy.stats import norm

from dp_accounting import dp_event
from dp_accounting.pld import pld_privacy_accountant
from dp_accounting.rdp import rdp_privacy_accountant as rdp_lib

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tests', 'fixtures', 'dp-accounting.json')
ORDERS = [1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64))
PROBE_ORDERS = [1.5, 2, 2.5, 3.7, 8, 10.9, 32, 63]


def rdp_quadrature(q, sigma, alpha):
    """Single-step RDP of the sampled Gaussian by direct integration (30 digits)."""
    if q == 1:
        return alpha / (2 * sigma ** 2)
    mpmath.mp.dps = 30
    q, s, a = mpmath.mpf(q), mpmath.mpf(sigma), mpmath.mpf(alpha)
    f = lambda x: mpmath.npdf(x, 0, s) * ((1 - q) + q * mpmath.exp((2 * x - 1) / (2 * s ** 2))) ** a
    # The integrand peaks between 0 and about alpha (the tilted Gaussian); split there for quad.
    pts = [-mpmath.inf, -10 * s, 0, 0.5, a / 2, a, a + 10 * s, 2 * a + 40 * s, mpmath.inf]
    return float(mpmath.log(mpmath.quad(f, sorted(set(pts)))) / (a - 1))


def finite_or_none(x):
    return float(x) if math.isfinite(x) else None


def rdp_case(sigma, q, steps, delta):
    rdp = rdp_lib._compute_rdp_poisson_subsampled_gaussian(q, sigma, ORDERS) * steps
    improved, order = rdp_lib.compute_epsilon(ORDERS, rdp, delta)
    classic_vec = rdp - math.log(delta) / (np.array(ORDERS) - 1)
    i = int(np.argmin(classic_vec))
    probes = [rdp_quadrature(q, sigma, a) for a in PROBE_ORDERS]
    return {
        'noiseMultiplier': sigma, 'sampleRate': q, 'steps': steps, 'delta': delta,
        'improved': float(improved), 'improvedOrder': float(order),
        'classic': float(classic_vec[i]), 'classicOrder': float(ORDERS[i]),
        'orders': [[float(a), finite_or_none(r)] for a, r in zip(PROBE_ORDERS, probes)],
        # Orders Google's series left out (so its epsilon may be looser than a complete one).
        'excluded': [float(a) for a, r in zip(ORDERS, rdp) if not math.isfinite(r)],
    }


def gaussian_delta(eps, s):
    """delta(eps) of the Gaussian mechanism with noise s (sensitivity 1), Balle & Wang 2018."""
    return norm.cdf(-eps * s + 1 / (2 * s)) - math.exp(eps) * norm.cdf(-eps * s - 1 / (2 * s))


def gaussian_exact(sigma, steps, delta):
    s = sigma / math.sqrt(steps)
    eps = optimize.brentq(lambda e: gaussian_delta(e, s) - delta, 0, 500, xtol=1e-14)
    return {'noiseMultiplier': sigma, 'sampleRate': 1.0, 'steps': steps, 'delta': delta, 'epsilon': eps}


def pld_case(sigma, q, steps, delta):
    acc = pld_privacy_accountant.PLDAccountant(value_discretization_interval=1e-4)
    acc.compose(dp_event.PoissonSampledDpEvent(q, dp_event.GaussianDpEvent(sigma)), steps)
    return {'noiseMultiplier': sigma, 'sampleRate': q, 'steps': steps, 'delta': delta, 'epsilon': float(acc.get_epsilon(delta))}


def gdp_case(sigma, q, steps, delta):
    mu_p = math.sqrt(math.exp(sigma ** -2) - 1) * math.sqrt(steps) * q
    c = q * math.sqrt(steps)
    mu_u = math.sqrt(2) * c * math.sqrt(math.exp(sigma ** -2) * norm.cdf(1.5 / sigma) + 3 * norm.cdf(-0.5 / sigma) - 2)

    def eps_of(mu):
        f = lambda e: norm.cdf(-e / mu + mu / 2) - math.exp(e) * norm.cdf(-e / mu - mu / 2) - delta
        return optimize.brentq(f, 0, 500, xtol=1e-14)

    return {'noiseMultiplier': sigma, 'sampleRate': q, 'steps': steps, 'delta': delta,
            'muPoisson': mu_p, 'epsilonPoisson': eps_of(mu_p), 'muUniform': mu_u, 'epsilonUniform': eps_of(mu_u)}


def log_erfc_cases():
    mpmath.mp.dps = 40
    xs = [0, 1e-8, 0.1, 0.3, 0.5, 0.7, 0.9, 0.999, 1, 1.001, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10, 20, 27, 30, 50, 100, 1000,
          -1e-8, -0.3, -0.99, -1, -1.01, -3, -6, -30]
    return [[x, float(mpmath.log(mpmath.erfc(x)))] for x in xs]


def main():
    mnist_q = 256 / 60000
    out = {
        'source': 'scripts/dp-accounting-fixtures.py (dp-accounting 0.6.0, scipy)',
        # TF-Privacy's MNIST tutorial: sigma 1.1, batch 256 of 60000, 60 epochs, delta 1e-5.
        'anchor': [rdp_case(1.1, mnist_q, 14062, 1e-5), rdp_case(1.1, mnist_q, 14063, 1e-5)],
        'rdp': [rdp_case(s, q, t, d)
                for s in (0.6, 1.1, 2.0, 5.0)
                for q in (0.001, mnist_q, 0.01, 0.1, 1.0)
                for t, d in ((1, 1e-5), (100, 1e-5), (10000, 1e-6))],
        'gaussianExact': [gaussian_exact(s, t, d) for s, t, d in ((1.0, 1, 1e-5), (2.0, 1, 1e-6), (5.0, 10, 1e-5), (10.0, 100, 1e-5))],
        'pld': [pld_case(s, q, t, d) for s, q, t, d in (
            (1.1, mnist_q, 1000, 1e-5), (0.8, 0.01, 500, 1e-5), (2.0, 0.1, 100, 1e-5), (1.1, mnist_q, 14062, 1e-5))],
        'logErfc': log_erfc_cases(),
        'gdp': [gdp_case(s, q, t, d) for s, q, t, d in (
            (1.1, mnist_q, 14062, 1e-5), (0.8, 0.01, 1000, 1e-5), (2.0, 0.05, 500, 1e-6), (4.0, 0.001, 100000, 1e-5))],
    }
    with open(OUT, 'w') as f:
        json.dump(out, f, indent=1)
        f.write('\n')
    print(f'wrote {OUT}')


if __name__ == '__main__':
    main()
