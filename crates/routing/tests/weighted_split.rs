//! The weighted split among equal-cost healthy carriers is unbiased: a seeded chi-square test.

use smsroute_routing::{AllHealthy, CarrierInfo, TableBuilder};
use smsroute_types::{E164, Money, SplitMix64};

#[test]
fn split_follows_weights_chi_square() {
    let weights = [5u32, 3, 1, 1];
    let mut b = TableBuilder::new();
    for (i, &w) in weights.iter().enumerate() {
        let c = b.carrier(CarrierInfo::new(&format!("c{i}"))).unwrap();
        b.route("33", c, Money::from_micros(1_000), 0, w).unwrap();
    }
    // A pricier carrier never wins the split.
    let pricey = b.carrier(CarrierInfo::new("pricey")).unwrap();
    b.route("33", pricey, Money::from_micros(2_000), 0, 100)
        .unwrap();
    let table = b.build().unwrap();
    let number = E164::parse("33612345678").unwrap();

    let picks = 200_000u64;
    let mut rng = SplitMix64::new(0x5EED);
    let mut counts = [0u64; 5];
    for _ in 0..picks {
        let route = table.route(&number, &AllHealthy, rng.next_u64());
        counts[route.first().unwrap().carrier.get()] += 1;
    }
    assert_eq!(counts[4], 0, "the pricier carrier is never first");
    let total_weight: u32 = weights.iter().sum();
    let chi_square: f64 = weights
        .iter()
        .zip(counts)
        .map(|(&w, observed)| {
            let expected = picks as f64 * f64::from(w) / f64::from(total_weight);
            (observed as f64 - expected).powi(2) / expected
        })
        .sum();
    // 3 degrees of freedom: 16.27 is the 0.999 quantile.
    assert!(
        chi_square < 16.27,
        "chi-square {chi_square:.2} for counts {counts:?}"
    );
}
