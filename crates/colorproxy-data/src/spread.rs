//! The spread of a result over seeds: mean, sample standard deviation and the 95% confidence
//! interval of the mean with Student's t (n - 1 degrees of freedom), as experiment tables report.

/// Mean, sample standard deviation and 95% interval half-width over `n` values.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Spread {
    pub n: usize,
    pub mean: f64,
    /// Sample standard deviation (n - 1); 0 for one value.
    pub std: f64,
    /// Half-width of the 95% interval `t_{0.975, n-1} * std / sqrt(n)`; NaN for one value.
    pub ci95: f64,
}

/// The 0.975 quantile of Student's t with `df` degrees of freedom: tabulated for 1-30 (the
/// standard table, 3 decimals), then the Cornish-Fisher expansion around the normal quantile
/// (error below 1e-4 from 30 on).
pub fn t_975(df: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
        2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
        2.045, 2.042,
    ];
    match df {
        0 => f64::NAN,
        1..=30 => TABLE[df - 1],
        _ => {
            let (z, v) = (1.959_963_984_540_054f64, df as f64);
            z + (z.powi(3) + z) / (4.0 * v)
                + (5.0 * z.powi(5) + 16.0 * z.powi(3) + 3.0 * z) / (96.0 * v * v)
                + (3.0 * z.powi(7) + 19.0 * z.powi(5) + 17.0 * z.powi(3) - 15.0 * z) / (384.0 * v.powi(3))
        }
    }
}

/// The spread of `values` (NaN mean for none).
pub fn spread(values: &[f64]) -> Spread {
    let n = values.len();
    let mean = values.iter().sum::<f64>() / n as f64;
    let std = if n > 1 {
        (values.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
    } else {
        0.0
    };
    let ci95 = if n > 1 { t_975(n - 1) * std / (n as f64).sqrt() } else { f64::NAN };
    Spread { n, mean, std, ci95 }
}
