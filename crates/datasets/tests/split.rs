//! The 90/10 split equals NumPy's, value for value (reference numbers from
//! tests/fixtures/numpy_split.py).

use datasets::split::{numpy_permutation, train_val};

#[test]
fn split_matches_numpy_legacy_shuffle() {
    // (n, seed, first 8, last val, first train, last)
    let cases: [(usize, u32, [usize; 8], usize, usize, usize); 4] = [
        (
            50_000,
            1,
            [26247, 35067, 34590, 16668, 12196, 2600, 9047, 2206],
            47381,
            45573,
            33003,
        ),
        (
            50_000,
            2,
            [23656, 27442, 40162, 8459, 8051, 42404, 89, 1461],
            17954,
            24728,
            23720,
        ),
        (
            50_000,
            5,
            [24166, 42699, 15927, 7473, 5070, 33926, 21409, 9495],
            46012,
            12807,
            35683,
        ),
        (
            60_000,
            7,
            [25170, 10935, 43596, 13970, 24883, 7581, 1712, 3004],
            44305,
            37630,
            58564,
        ),
    ];
    for (n, seed, first8, last_val, first_train, last) in cases {
        let p = numpy_permutation(n, seed);
        assert_eq!(p[..8], first8, "n={n} seed={seed}");
        let s = train_val(n, 0.1, seed);
        assert_eq!(s.val.len(), n / 10);
        assert_eq!(s.val[..8], first8);
        assert_eq!(*s.val.last().unwrap(), last_val);
        assert_eq!(s.train[0], first_train);
        assert_eq!(*s.train.last().unwrap(), last);
    }
}
