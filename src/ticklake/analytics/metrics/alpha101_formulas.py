"""The implementations of the 101 formulaic alphas that need only bars (see ``alpha101``).

Each ``aNNN(p)`` is the paper's formula NNN written with the operators of
:class:`~ticklake.analytics.metrics.alpha101_ops.Panel`; ``IMPLEMENTED`` maps the alpha
number to its function. The paper's ``min(x, d)`` / ``max(x, d)`` with an integer ``d``
are ``ts_min`` / ``ts_max``; between two series they are elementwise (``min2``/``max2``).

Examples:
    >>> from ticklake.analytics.metrics.alpha101_ops import Panel, example_bars
    >>> p = Panel(example_bars())
    >>> round(a101(p).drop_nulls().abs().max(), 3) < 1
    True
"""

from __future__ import annotations

from collections.abc import Callable

import polars as pl

from ticklake.analytics.metrics.alpha101_ops import Panel

S = pl.Series


def _fl(x: S) -> S:
    return x.cast(pl.Float64)


def a001(p: Panel) -> S:
    x = p.where(p.returns < 0, p.stddev(p.returns, 20), p.close)
    return p.rank(p.ts_argmax(p.signedpower(x, 2.0), 5)) - 0.5


def a002(p: Panel) -> S:
    a = p.rank(p.delta(p.volume.log(), 2))
    return -1 * p.correlation(a, p.rank((p.close - p.open) / p.open), 6)


def a003(p: Panel) -> S:
    return -1 * p.correlation(p.rank(p.open), p.rank(p.volume), 10)


def a004(p: Panel) -> S:
    return -1 * p.ts_rank(p.rank(p.low), 9)


def a005(p: Panel) -> S:
    return p.rank(p.open - p.sum(p.vwap, 10) / 10) * (-1 * abs(p.rank(p.close - p.vwap)))


def a006(p: Panel) -> S:
    return -1 * p.correlation(p.open, p.volume, 10)


def a007(p: Panel) -> S:
    d7 = p.delta(p.close, 7)
    return p.where(p.adv(20) < p.volume, -1 * p.ts_rank(abs(d7), 60) * d7.sign(), -1)


def a008(p: Panel) -> S:
    s = p.sum(p.open, 5) * p.sum(p.returns, 5)
    return -1 * p.rank(s - p.delay(s, 10))


def _a009(p: Panel, d: int) -> S:
    d1 = p.delta(p.close, 1)
    inner = p.where(p.ts_max(d1, d) < 0, d1, -1 * d1)
    return p.where(p.ts_min(d1, d) > 0, d1, inner)


def a009(p: Panel) -> S:
    return _a009(p, 5)


def a010(p: Panel) -> S:
    return p.rank(_a009(p, 4))


def a011(p: Panel) -> S:
    gap = p.vwap - p.close
    both = p.rank(p.ts_max(gap, 3)) + p.rank(p.ts_min(gap, 3))
    return both * p.rank(p.delta(p.volume, 3))


def a012(p: Panel) -> S:
    return p.delta(p.volume, 1).sign() * (-1 * p.delta(p.close, 1))


def a013(p: Panel) -> S:
    return -1 * p.rank(p.covariance(p.rank(p.close), p.rank(p.volume), 5))


def a014(p: Panel) -> S:
    return -1 * p.rank(p.delta(p.returns, 3)) * p.correlation(p.open, p.volume, 10)


def a015(p: Panel) -> S:
    return -1 * p.sum(p.rank(p.correlation(p.rank(p.high), p.rank(p.volume), 3)), 3)


def a016(p: Panel) -> S:
    return -1 * p.rank(p.covariance(p.rank(p.high), p.rank(p.volume), 5))


def a017(p: Panel) -> S:
    first = -1 * p.rank(p.ts_rank(p.close, 10)) * p.rank(p.delta(p.delta(p.close, 1), 1))
    return first * p.rank(p.ts_rank(p.volume / p.adv(20), 5))


def a018(p: Panel) -> S:
    body = p.close - p.open
    inner = p.stddev(abs(body), 5) + body + p.correlation(p.close, p.open, 10)
    return -1 * p.rank(inner)


def a019(p: Panel) -> S:
    move = (p.close - p.delay(p.close, 7)) + p.delta(p.close, 7)
    return -1 * move.sign() * (1 + p.rank(1 + p.sum(p.returns, 250)))


def a020(p: Panel) -> S:
    o = p.open
    first = -1 * p.rank(o - p.delay(p.high, 1)) * p.rank(o - p.delay(p.close, 1))
    return first * p.rank(o - p.delay(p.low, 1))


def a021(p: Panel) -> S:
    m8, s8, m2 = p.sum(p.close, 8) / 8, p.stddev(p.close, 8), p.sum(p.close, 2) / 2
    ratio = p.volume / p.adv(20)
    last = p.where(ratio >= 1, 1, -1)
    return p.where(m8 + s8 < m2, -1, p.where(m2 < m8 - s8, 1, last))


def a022(p: Panel) -> S:
    d = p.delta(p.correlation(p.high, p.volume, 5), 5)
    return -1 * (d * p.rank(p.stddev(p.close, 20)))


def a023(p: Panel) -> S:
    return p.where(p.sum(p.high, 20) / 20 < p.high, -1 * p.delta(p.high, 2), 0)


def a024(p: Panel) -> S:
    x = p.delta(p.sum(p.close, 100) / 100, 100) / p.delay(p.close, 100)
    return p.where(x <= 0.05, -1 * (p.close - p.ts_min(p.close, 100)), -1 * p.delta(p.close, 3))


def a025(p: Panel) -> S:
    return p.rank(-1 * p.returns * p.adv(20) * p.vwap * (p.high - p.close))


def a026(p: Panel) -> S:
    c = p.correlation(p.ts_rank(p.volume, 5), p.ts_rank(p.high, 5), 5)
    return -1 * p.ts_max(c, 3)


def a027(p: Panel) -> S:
    c = p.sum(p.correlation(p.rank(p.volume), p.rank(p.vwap), 6), 2) / 2.0
    return p.where(p.rank(c) > 0.5, -1, 1)


def a028(p: Panel) -> S:
    c = p.correlation(p.adv(20), p.low, 5)
    return p.scale(c + (p.high + p.low) / 2 - p.close)


def a029(p: Panel) -> S:
    inner = p.rank(p.rank(-1 * p.rank(p.delta(p.close - 1, 5))))
    x = p.rank(p.rank(p.scale(p.sum(p.ts_min(inner, 2), 1).log())))
    first = p.ts_min(p.product(x, 1), 5)
    return first + p.ts_rank(p.delay(-1 * p.returns, 6), 5)


def a030(p: Panel) -> S:
    c, c1, c2, c3 = (p.delay(p.close, k) if k else p.close for k in range(4))
    signs = (c - c1).sign() + (c1 - c2).sign() + (c2 - c3).sign()
    return (1.0 - p.rank(signs)) * p.sum(p.volume, 5) / p.sum(p.volume, 20)


def a031(p: Panel) -> S:
    d = p.decay_linear(-1 * p.rank(p.rank(p.delta(p.close, 10))), 10)
    first = p.rank(p.rank(p.rank(d))) + p.rank(-1 * p.delta(p.close, 3))
    return first + p.scale(p.correlation(p.adv(20), p.low, 12)).sign()


def a032(p: Panel) -> S:
    first = p.scale(p.sum(p.close, 7) / 7 - p.close)
    return first + 20 * p.scale(p.correlation(p.vwap, p.delay(p.close, 5), 230))


def a033(p: Panel) -> S:
    return p.rank(-1 * (1 - p.open / p.close))


def a034(p: Panel) -> S:
    vol = p.rank(p.stddev(p.returns, 2) / p.stddev(p.returns, 5))
    return p.rank((1 - vol) + (1 - p.rank(p.delta(p.close, 1))))


def a035(p: Panel) -> S:
    first = p.ts_rank(p.volume, 32) * (1 - p.ts_rank(p.close + p.high - p.low, 16))
    return first * (1 - p.ts_rank(p.returns, 32))


def a036(p: Panel) -> S:
    body = p.close - p.open
    return (
        2.21 * p.rank(p.correlation(body, p.delay(p.volume, 1), 15))
        + 0.7 * p.rank(p.open - p.close)
        + 0.73 * p.rank(p.ts_rank(p.delay(-1 * p.returns, 6), 5))
        + p.rank(abs(p.correlation(p.vwap, p.adv(20), 6)))
        + 0.6 * p.rank((p.sum(p.close, 200) / 200 - p.open) * body)
    )


def a037(p: Panel) -> S:
    c = p.correlation(p.delay(p.open - p.close, 1), p.close, 200)
    return p.rank(c) + p.rank(p.open - p.close)


def a038(p: Panel) -> S:
    return -1 * p.rank(p.ts_rank(p.close, 10)) * p.rank(p.close / p.open)


def a039(p: Panel) -> S:
    d = p.decay_linear(p.volume / p.adv(20), 9)
    first = -1 * p.rank(p.delta(p.close, 7) * (1 - p.rank(d)))
    return first * (1 + p.rank(p.sum(p.returns, 250)))


def a040(p: Panel) -> S:
    return -1 * p.rank(p.stddev(p.high, 10)) * p.correlation(p.high, p.volume, 10)


def a041(p: Panel) -> S:
    return (p.high * p.low) ** 0.5 - p.vwap


def a042(p: Panel) -> S:
    return p.rank(p.vwap - p.close) / p.rank(p.vwap + p.close)


def a043(p: Panel) -> S:
    return p.ts_rank(p.volume / p.adv(20), 20) * p.ts_rank(-1 * p.delta(p.close, 7), 8)


def a044(p: Panel) -> S:
    return -1 * p.correlation(p.high, p.rank(p.volume), 5)


def a045(p: Panel) -> S:
    first = p.rank(p.sum(p.delay(p.close, 5), 20) / 20) * p.correlation(p.close, p.volume, 2)
    second = p.rank(p.correlation(p.sum(p.close, 5), p.sum(p.close, 20), 2))
    return -1 * (first * second)


def _slope_change(p: Panel) -> S:
    c10, c20 = p.delay(p.close, 10), p.delay(p.close, 20)
    return (c20 - c10) / 10 - (c10 - p.close) / 10


def a046(p: Panel) -> S:
    x = _slope_change(p)
    last = -1 * (p.close - p.delay(p.close, 1))
    return p.where(x > 0.25, -1, p.where(x < 0, 1, last))


def a047(p: Panel) -> S:
    first = p.rank(1 / p.close) * p.volume / p.adv(20)
    second = p.high * p.rank(p.high - p.close) / (p.sum(p.high, 5) / 5)
    return first * second - p.rank(p.vwap - p.delay(p.vwap, 5))


def a049(p: Panel) -> S:
    return p.where(_slope_change(p) < -0.1, 1, -1 * (p.close - p.delay(p.close, 1)))


def a050(p: Panel) -> S:
    c = p.correlation(p.rank(p.volume), p.rank(p.vwap), 5)
    return -1 * p.ts_max(p.rank(c), 5)


def a051(p: Panel) -> S:
    return p.where(_slope_change(p) < -0.05, 1, -1 * (p.close - p.delay(p.close, 1)))


def a052(p: Panel) -> S:
    low5 = p.ts_min(p.low, 5)
    first = -1 * low5 + p.delay(low5, 5)
    slow = p.rank((p.sum(p.returns, 240) - p.sum(p.returns, 20)) / 220)
    return first * slow * p.ts_rank(p.volume, 5)


def a053(p: Panel) -> S:
    c, lo, hi = p.close, p.low, p.high
    return -1 * p.delta(((c - lo) - (hi - c)) / (c - lo), 9)


def a054(p: Panel) -> S:
    return -1 * (p.low - p.close) * p.open**5 / ((p.low - p.high) * p.close**5)


def a055(p: Panel) -> S:
    lo12, hi12 = p.ts_min(p.low, 12), p.ts_max(p.high, 12)
    k = p.rank((p.close - lo12) / (hi12 - lo12))
    return -1 * p.correlation(k, p.rank(p.volume), 6)


def a057(p: Panel) -> S:
    return 0 - (p.close - p.vwap) / p.decay_linear(p.rank(p.ts_argmax(p.close, 30)), 2)


def a060(p: Panel) -> S:
    c, lo, hi = p.close, p.low, p.high
    first = 2 * p.scale(p.rank(((c - lo) - (hi - c)) / (hi - lo) * p.volume))
    return 0 - (first - p.scale(p.rank(p.ts_argmax(c, 10))))


def a061(p: Panel) -> S:
    left = p.rank(p.vwap - p.ts_min(p.vwap, 16.1219))
    return _fl(left < p.rank(p.correlation(p.vwap, p.adv(180), 17.9282)))


def a062(p: Panel) -> S:
    left = p.rank(p.correlation(p.vwap, p.sum(p.adv(20), 22.4101), 9.91009))
    inner = (p.rank(p.open) + p.rank(p.open)) < (p.rank((p.high + p.low) / 2) + p.rank(p.high))
    return _fl(left < p.rank(_fl(inner))) * -1


def a064(p: Panel) -> S:
    w = 0.178404
    a = p.sum(p.open * w + p.low * (1 - w), 12.7054)
    left = p.rank(p.correlation(a, p.sum(p.adv(120), 12.7054), 16.6208))
    right = p.rank(p.delta((p.high + p.low) / 2 * w + p.vwap * (1 - w), 3.69741))
    return _fl(left < right) * -1


def a065(p: Panel) -> S:
    w = 0.00817205
    c = p.correlation(p.open * w + p.vwap * (1 - w), p.sum(p.adv(60), 8.6911), 6.40374)
    return _fl(p.rank(c) < p.rank(p.open - p.ts_min(p.open, 13.635))) * -1


def a066(p: Panel) -> S:
    w = 0.96633
    first = p.rank(p.decay_linear(p.delta(p.vwap, 3.51013), 7.23052))
    x = ((p.low * w + p.low * (1 - w)) - p.vwap) / (p.open - (p.high + p.low) / 2)
    return (first + p.ts_rank(p.decay_linear(x, 11.4157), 6.72611)) * -1


def a068(p: Panel) -> S:
    left = p.ts_rank(p.correlation(p.rank(p.high), p.rank(p.adv(15)), 8.91644), 13.9333)
    right = p.rank(p.delta(p.close * 0.518371 + p.low * (1 - 0.518371), 1.06157))
    return _fl(left < right) * -1


def a071(p: Panel) -> S:
    c = p.correlation(p.ts_rank(p.close, 3.43976), p.ts_rank(p.adv(180), 12.0647), 18.0175)
    first = p.ts_rank(p.decay_linear(c, 4.20501), 15.6948)
    sq = p.rank((p.low + p.open) - (p.vwap + p.vwap)) ** 2
    return p.max2(first, p.ts_rank(p.decay_linear(sq, 16.4662), 4.4388))


def a072(p: Panel) -> S:
    top = p.decay_linear(p.correlation((p.high + p.low) / 2, p.adv(40), 8.93345), 10.1519)
    c = p.correlation(p.ts_rank(p.vwap, 3.72469), p.ts_rank(p.volume, 18.5188), 6.86671)
    return p.rank(top) / p.rank(p.decay_linear(c, 2.95011))


def a073(p: Panel) -> S:
    w = 0.147155
    m = p.open * w + p.low * (1 - w)
    first = p.rank(p.decay_linear(p.delta(p.vwap, 4.72775), 2.91864))
    second = p.ts_rank(p.decay_linear(p.delta(m, 2.03608) / m * -1, 3.33829), 16.7411)
    return p.max2(first, second) * -1


def a074(p: Panel) -> S:
    w = 0.0261661
    left = p.rank(p.correlation(p.close, p.sum(p.adv(30), 37.4843), 15.1365))
    right = p.rank(p.correlation(p.rank(p.high * w + p.vwap * (1 - w)), p.rank(p.volume), 11.4791))
    return _fl(left < right) * -1


def a075(p: Panel) -> S:
    left = p.rank(p.correlation(p.vwap, p.volume, 4.24304))
    return _fl(left < p.rank(p.correlation(p.rank(p.low), p.rank(p.adv(50)), 12.4413)))


def a077(p: Panel) -> S:
    mid = (p.high + p.low) / 2
    first = p.rank(p.decay_linear((mid + p.high) - (p.vwap + p.high), 20.0451))
    second = p.rank(p.decay_linear(p.correlation(mid, p.adv(40), 3.1614), 5.64125))
    return p.min2(first, second)


def a078(p: Panel) -> S:
    w = 0.352233
    a = p.sum(p.low * w + p.vwap * (1 - w), 19.7428)
    base = p.rank(p.correlation(a, p.sum(p.adv(40), 19.7428), 6.83313))
    return p.pow(base, p.rank(p.correlation(p.rank(p.vwap), p.rank(p.volume), 5.77492)))


def a081(p: Panel) -> S:
    c = p.correlation(p.vwap, p.sum(p.adv(10), 49.6054), 8.47743)
    left = p.rank(p.product(p.rank(p.rank(c) ** 4), 14.9655).log())
    right = p.rank(p.correlation(p.rank(p.vwap), p.rank(p.volume), 5.07914))
    return _fl(left < right) * -1


def a083(p: Panel) -> S:
    spread = (p.high - p.low) / (p.sum(p.close, 5) / 5)
    top = p.rank(p.delay(spread, 2)) * p.rank(p.rank(p.volume))
    return top / (spread / (p.vwap - p.close))


def a084(p: Panel) -> S:
    x = p.ts_rank(p.vwap - p.ts_max(p.vwap, 15.3217), 20.7127)
    return p.signedpower(x, p.delta(p.close, 4.96796))


def a085(p: Panel) -> S:
    w = 0.876703
    base = p.rank(p.correlation(p.high * w + p.close * (1 - w), p.adv(30), 9.61331))
    c = p.correlation(
        p.ts_rank((p.high + p.low) / 2, 3.70596), p.ts_rank(p.volume, 10.1595), 7.11408
    )
    return p.pow(base, p.rank(c))


def a086(p: Panel) -> S:
    left = p.ts_rank(p.correlation(p.close, p.sum(p.adv(20), 14.7444), 6.00049), 20.4195)
    return _fl(left < p.rank((p.open + p.close) - (p.vwap + p.open))) * -1


def a088(p: Panel) -> S:
    x = (p.rank(p.open) + p.rank(p.low)) - (p.rank(p.high) + p.rank(p.close))
    first = p.rank(p.decay_linear(x, 8.06882))
    c = p.correlation(p.ts_rank(p.close, 8.44728), p.ts_rank(p.adv(60), 20.6966), 8.01266)
    return p.min2(first, p.ts_rank(p.decay_linear(c, 6.65053), 2.61957))


def a092(p: Panel) -> S:
    cond = _fl(((p.high + p.low) / 2 + p.close) < (p.low + p.open))
    first = p.ts_rank(p.decay_linear(cond, 14.7221), 18.8683)
    c = p.correlation(p.rank(p.low), p.rank(p.adv(30)), 7.58555)
    return p.min2(first, p.ts_rank(p.decay_linear(c, 6.94024), 6.80584))


def a094(p: Panel) -> S:
    base = p.rank(p.vwap - p.ts_min(p.vwap, 11.5783))
    c = p.correlation(p.ts_rank(p.vwap, 19.6462), p.ts_rank(p.adv(60), 4.02992), 18.0926)
    return p.pow(base, p.ts_rank(c, 2.70756)) * -1


def a095(p: Panel) -> S:
    left = p.rank(p.open - p.ts_min(p.open, 12.4105))
    mid = (p.high + p.low) / 2
    c = p.correlation(p.sum(mid, 19.1351), p.sum(p.adv(40), 19.1351), 12.8742)
    return _fl(left < p.ts_rank(p.rank(c) ** 5, 11.7584))


def a096(p: Panel) -> S:
    c1 = p.correlation(p.rank(p.vwap), p.rank(p.volume), 3.83878)
    first = p.ts_rank(p.decay_linear(c1, 4.16783), 8.38151)
    c2 = p.correlation(p.ts_rank(p.close, 7.45404), p.ts_rank(p.adv(60), 4.13242), 3.65459)
    second = p.ts_rank(p.decay_linear(p.ts_argmax(c2, 12.6556), 14.0365), 13.4143)
    return p.max2(first, second) * -1


def a098(p: Panel) -> S:
    c1 = p.correlation(p.vwap, p.sum(p.adv(5), 26.4719), 4.58418)
    c2 = p.correlation(p.rank(p.open), p.rank(p.adv(15)), 20.8187)
    second = p.decay_linear(p.ts_rank(p.ts_argmin(c2, 8.62571), 6.95668), 8.07206)
    return p.rank(p.decay_linear(c1, 7.18088)) - p.rank(second)


def a099(p: Panel) -> S:
    mid = (p.high + p.low) / 2
    c = p.correlation(p.sum(mid, 19.8975), p.sum(p.adv(60), 19.8975), 8.8136)
    return _fl(p.rank(c) < p.rank(p.correlation(p.low, p.volume, 6.28259))) * -1


def a101(p: Panel) -> S:
    return (p.close - p.open) / ((p.high - p.low) + 0.001)


IMPLEMENTED: dict[int, Callable[[Panel], S]] = {
    int(name[1:]): fn
    for name, fn in sorted(globals().items())
    if len(name) == 4 and name[0] == "a" and name[1:].isdigit()
}
