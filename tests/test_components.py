"""The distributed engines' components kernels, run here as an engine runs them: each step over hash partitions of
nodes, rounds until the star check holds. They must find scipy's components, each around its smallest node."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from transforms.engines import components


def _shuffled(u: np.ndarray, v: np.ndarray, partitions: int):
    target = components.spread(u, partitions)
    for p in range(partitions):
        yield u[target == p], v[target == p]


def _step(step, u, v, partitions):
    out = [step(pu, pv) for pu, pv in _shuffled(u, v, partitions)]
    return np.concatenate([a for a, _ in out]), np.concatenate([b for _, b in out])


def _stars(a, b, partitions):
    """As an engine's star check: edges by their larger node, centres by themselves."""
    by_b, by_a = components.spread(b, partitions), components.spread(a, partitions)
    out = [components.distinct_stars(a[by_b == p], b[by_b == p], a[by_a == p]) for p in range(partitions)]
    return (np.concatenate([o[0] for o in out]), np.concatenate([o[1] for o in out]), all(o[2] for o in out))


def _components(src, dst, partitions):
    a, b, star = _stars(*components.canonical(src, dst), partitions)
    rounds = 0
    while not star:
        rounds += 1
        assert rounds <= components.MAX_ROUNDS
        a, b = _step(components.large_star, *components.both_ways(a, b), partitions)
        a, b = _step(components.small_star, b, a, partitions)
        a, b, star = _stars(a, b, partitions)
    return a, b, rounds


def _graphs():
    rng = np.random.default_rng(5)
    n = 2_000
    labels = rng.permutation(n).astype(np.int64) * 7 + 3  # ranks are sparse, not 0..n-1
    yield "random", labels[rng.integers(0, n, 1_500)], labels[rng.integers(0, n, 1_500)], labels
    path = labels[:400]
    yield "a path in random order", path[:-1], path[1:], labels
    ordered = np.sort(labels)[:400]
    yield "a path in rank order", ordered[:-1], ordered[1:], labels
    centred = np.sort(labels)  # as buckets' stars: the centre is each bucket's smallest node
    yield "disjoint stars", np.repeat(centred[:50], 5), rng.permutation(centred[50:300]), labels


@pytest.mark.parametrize("partitions", [1, 4])
@pytest.mark.parametrize("graph", list(_graphs()), ids=lambda g: g[0])
def test_rounds_give_each_component_as_a_star_around_its_smallest_node(graph, partitions):
    _, src, dst, labels = graph
    a, b, rounds = _components(src, dst, partitions)

    index = {int(x): i for i, x in enumerate(labels)}
    to_i = np.vectorize(index.__getitem__)
    _, comp = connected_components(coo_matrix((np.ones(len(src)), (to_i(src), to_i(dst))), shape=(len(labels),) * 2))
    touched = np.unique(np.concatenate([src, dst]))
    smallest = {}
    for node in touched:
        c = comp[index[int(node)]]
        smallest[c] = min(smallest.get(c, node), node)
    expected = {int(x): int(smallest[comp[index[int(x)]]]) for x in touched if smallest[comp[index[int(x)]]] != x}

    assert len(np.unique(b)) == len(b)  # every node is a leaf of one star at most
    assert dict(zip(b.tolist(), a.tolist())) == expected
    assert not np.isin(a, b).any()
    if graph[0] == "disjoint stars":
        assert rounds == 0  # exact dedupe's case: the buckets' stars are the answer


def test_the_star_check_sees_a_crowded_leaf_and_a_centre_that_is_a_leaf():
    assert components.distinct_stars(np.array([1, 1]), np.array([5, 5]), np.array([5]))[2] is False  # 5 is a centre
    assert components.distinct_stars(np.array([1, 1]), np.array([5, 5]), np.array([2]))[2] is True
    assert components.distinct_stars(np.array([1, 2]), np.array([5, 5]), np.array([9]))[2] is False
    a, b, _ = components.distinct_stars(np.array([1, 1, 2]), np.array([5, 5, 6]), np.array([9]))
    assert (a.tolist(), b.tolist()) == ([1, 2], [5, 6])
