"""Hull and neighbour diagnostics against independent references."""
import numpy as np
from scipy.spatial import Delaunay
from sklearn.neighbors import NearestNeighbors

from rfp.geometry import dimension_study, in_convex_hull, other_cluster_neighbours


def test_hull_membership_matches_delaunay_in_two_dimensions():
    rng = np.random.default_rng(0)
    train, test = rng.normal(size=(60, 2)), 1.5 * rng.normal(size=(200, 2))
    want = Delaunay(train).find_simplex(test) >= 0
    assert np.array_equal(in_convex_hull(train, test), want)


def test_hull_membership_in_one_dimension_is_the_range():
    train = np.array([[0.0], [1.0], [3.0]])
    assert in_convex_hull(train, np.array([[-0.1], [0.0], [2.9], [3.1]])).tolist() == [False, True, True, False]


def test_neighbour_fraction_matches_sklearn():
    rng = np.random.default_rng(1)
    train, test = rng.normal(size=(100, 5)), rng.normal(size=(30, 5))
    cl, tcl = rng.integers(0, 7, 100), rng.integers(0, 7, 30)
    idx = NearestNeighbors(n_neighbors=5).fit(train).kneighbors(test, return_distance=False)
    want = (cl[idx] != tcl[:, None]).mean(1)
    np.testing.assert_allclose(other_cluster_neighbours(train, cl, test, tcl, 5), want)


def test_in_high_dimensions_test_points_leave_the_hull_and_neighbours_stay_home():
    r = dimension_study(dims=(1, 32), n_test=40)
    assert r["hull_share"][0] > 0.8 and r["hull_share"][1] < 0.1
    assert r["other_cluster"][1] < r["other_cluster"][0]
