//! CPU twins of shaders/loss.wgsl, in f64.

/// (dz, per-sample (loss, correct)) of mean softmax cross-entropy.
pub fn softmax_ce(
    n: usize,
    classes: usize,
    z: &[f32],
    labels: &[u32],
) -> (Vec<f32>, Vec<[f32; 2]>) {
    let mut dz = vec![0.0; n * classes];
    let mut per = Vec::with_capacity(n);
    for i in 0..n {
        let row = &z[i * classes..(i + 1) * classes];
        let (mut arg, mut mx) = (0, row[0]);
        for (j, &v) in row.iter().enumerate() {
            if v > mx {
                mx = v;
                arg = j;
            }
        }
        let mx64 = f64::from(mx);
        let lse = mx64
            + row
                .iter()
                .map(|&v| (f64::from(v) - mx64).exp())
                .sum::<f64>()
                .ln();
        let l = labels[i] as usize;
        for j in 0..classes {
            let p = (f64::from(row[j]) - lse).exp() - if j == l { 1.0 } else { 0.0 };
            dz[i * classes + j] = (p / n as f64) as f32;
        }
        per.push([
            (lse - f64::from(row[l])) as f32,
            if arg == l { 1.0 } else { 0.0 },
        ]);
    }
    (dz, per)
}

/// Mean loss (the forward value whose gradient softmax_ce returns).
pub fn mean_loss(n: usize, classes: usize, z: &[f32], labels: &[u32]) -> f64 {
    let (_, per) = softmax_ce(n, classes, z, labels);
    per.iter().map(|p| f64::from(p[0])).sum::<f64>() / n as f64
}

/// metrics after metrics_accumulate.
pub fn accumulate(metrics: [f32; 3], per: &[[f32; 2]]) -> [f32; 3] {
    let l: f64 = per.iter().map(|p| f64::from(p[0])).sum();
    let c: f64 = per.iter().map(|p| f64::from(p[1])).sum();
    [
        (f64::from(metrics[0]) + l) as f32,
        (f64::from(metrics[1]) + c) as f32,
        metrics[2] + per.len() as f32,
    ]
}
