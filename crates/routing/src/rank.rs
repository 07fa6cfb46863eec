//! Ranking: tier first, then effective cost (cost × health penalty); ejected carriers last
//! resort only; a weighted random pick among the leading equal-cost healthy group.
//!
//! Penalties within the equal-cost band (up to `band`, e.g. 1.05) rank as 1: small health
//! differences do not stop carriers of one price from sharing traffic.
//!
//! A [`Route`] borrows the table's candidate list instead of copying it: when every candidate
//! ranks as healthy with penalty 1 (the common case) the rank order is the list's static
//! order with the weighted pick moved to the front, and nothing is copied at all.

use smallvec::SmallVec;

use crate::{CarrierHealth, HealthState, HealthView, Offer};

/// The routing decision for one number: candidates best first, borrowed from the table.
#[derive(Clone, Debug)]
pub struct Route<'a> {
    offers: &'a [Offer],
    order: Order,
    /// A block rule removed every carrier.
    pub blocked: bool,
    /// Every candidate was ejected, so all are used (health alone never refuses).
    pub panic_mode: bool,
}

/// Rank order over a candidate list.
#[derive(Clone, Debug)]
enum Order {
    /// The static order with the offer at `first` moved to the front.
    Static { first: usize },
    /// Positions in the list, best first: health reordered or dropped some.
    Explicit(SmallVec<[u16; 16]>),
}

impl<'a> Route<'a> {
    /// Number of candidates.
    pub fn len(&self) -> usize {
        match &self.order {
            Order::Static { .. } => self.offers.len(),
            Order::Explicit(positions) => positions.len(),
        }
    }

    /// No carrier serves the number (or a block removed them all).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The candidate at `rank` (0 is the best).
    pub fn get(&self, rank: usize) -> Option<&'a Offer> {
        let offers = self.offers;
        match &self.order {
            Order::Static { first } => match rank {
                0 => offers.get(*first),
                r if r <= *first => offers.get(r - 1),
                r => offers.get(r),
            },
            Order::Explicit(positions) => positions.get(rank).map(|&p| &offers[usize::from(p)]),
        }
    }

    /// The best candidate.
    pub fn first(&self) -> Option<&'a Offer> {
        self.get(0)
    }

    /// Candidates, best first.
    pub fn iter(&self) -> impl Iterator<Item = &'a Offer> + '_ {
        (0..self.len()).filter_map(|rank| self.get(rank))
    }
}

/// Ranks `offers` (in static order: tier, cost, weight descending, carrier) under `health`;
/// a healthy or degraded carrier whose penalty is at most `band` (≥ 1) ranks as penalty 1.
///
/// With `pick` (a uniform random `u64`), the leading group of healthy carriers with equal tier
/// and effective cost is split by weight: `pick` chooses the first, the rest keep their order.
/// Without it the group stays in static order (weight descending, then id), as `explain` shows.
///
/// ```
/// use smsroute_routing::{AllHealthy, CarrierIndex, Offer, rank};
/// use smsroute_types::Money;
/// let offer = |carrier, micros| Offer {
///     cost: Money::from_micros(micros), weight: 1, carrier: CarrierIndex(carrier), tier: 0, own: true,
/// };
/// let offers = [offer(0, 3_500), offer(1, 4_000)];
/// let route = rank(&offers, false, &AllHealthy, 1.05, None);
/// assert_eq!(route.first().map(|o| o.carrier), Some(CarrierIndex(0)));
/// ```
pub fn rank<'a, H: HealthView + ?Sized>(
    offers: &'a [Offer],
    blocked: bool,
    health: &H,
    band: f32,
    pick: Option<u64>,
) -> Route<'a> {
    let nominal = offers
        .iter()
        .all(|o| ranks_healthy(health.health(o.carrier), band));
    let (order, panic_mode) = if nominal {
        // The split group: the leading offers with the first one's tier and cost.
        let group = offers.first().map_or(0, |lead| {
            offers
                .iter()
                .take_while(|o| o.tier == lead.tier && o.cost == lead.cost)
                .count()
        });
        let first = match pick {
            Some(pick) if group > 1 => {
                weighted_index(offers[..group].iter().map(|o| o.weight), pick)
            }
            _ => 0,
        };
        (Order::Static { first }, false)
    } else {
        rank_by_health(offers, health, band, pick)
    };
    Route {
        offers,
        order,
        blocked,
        panic_mode,
    }
}

/// Healthy, or degraded within the equal-cost band: ranks as penalty 1.
fn ranks_healthy(health: CarrierHealth, band: f32) -> bool {
    matches!(health.state, HealthState::Healthy | HealthState::Degraded) && health.penalty <= band
}

/// The slow path: some carrier is degraded past the band, probing or ejected.
fn rank_by_health<H: HealthView + ?Sized>(
    offers: &[Offer],
    health: &H,
    band: f32,
    pick: Option<u64>,
) -> (Order, bool) {
    let mut ranked: SmallVec<[(u16, CarrierHealth); 16]> = offers
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let mut h = health.health(o.carrier);
            if ranks_healthy(h, band) {
                h = CarrierHealth::HEALTHY;
            }
            (i as u16, h)
        })
        .collect();
    let ejected = ranked
        .iter()
        .filter(|(_, h)| h.state == HealthState::Ejected)
        .count();
    let panic_mode = ejected > 0 && ejected == ranked.len();
    if ejected > 0 && !panic_mode {
        // Skip at most the allowed share; ejected carriers beyond it stay, first in static
        // order first, and rank by their (high) effective cost.
        let allowed = (health.max_ejected_share().clamp(0.0, 1.0) * ranked.len() as f32) as usize;
        let mut keep = ejected.saturating_sub(allowed);
        ranked.retain(|(_, h)| {
            if h.state != HealthState::Ejected {
                return true;
            }
            let kept = keep > 0;
            keep = keep.saturating_sub(1);
            kept
        });
    }
    let effective = |&(i, h): &(u16, CarrierHealth)| {
        offers[usize::from(i)].cost.micros() as f64 * f64::from(h.penalty)
    };
    // Stable: equal effective costs keep weight-descending, id order.
    ranked.sort_by(|a, b| {
        let (oa, ob) = (&offers[usize::from(a.0)], &offers[usize::from(b.0)]);
        oa.tier
            .cmp(&ob.tier)
            .then(effective(a).total_cmp(&effective(b)))
    });
    if let (Some(pick), Some(&(lead, lead_health))) = (pick, ranked.first())
        && lead_health.state == HealthState::Healthy
    {
        let lead = &offers[usize::from(lead)];
        let group = ranked
            .iter()
            .take_while(|(i, h)| {
                let o = &offers[usize::from(*i)];
                o.tier == lead.tier
                    && o.cost == lead.cost
                    && h.state == HealthState::Healthy
                    && h.penalty == lead_health.penalty
            })
            .count();
        let chosen = weighted_index(
            ranked[..group]
                .iter()
                .map(|(i, _)| offers[usize::from(*i)].weight),
            pick,
        );
        ranked[..=chosen].rotate_right(1);
    }
    (
        Order::Explicit(ranked.iter().map(|(i, _)| *i).collect()),
        panic_mode,
    )
}

/// Index of a weighted random member of a group with these weights (weight 0 is never
/// chosen unless all are 0: then the first).
fn weighted_index(weights: impl Iterator<Item = u32> + Clone, pick: u64) -> usize {
    let total: u64 = weights.clone().map(u64::from).sum();
    // Lemire's multiply-shift maps `pick` onto 0..total without a modulo bias worth measuring.
    let mut target = ((u128::from(pick) * u128::from(total)) >> 64) as u64;
    for (i, w) in weights.map(u64::from).enumerate() {
        if target < w {
            return i;
        }
        target -= w;
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CarrierIndex;
    use smsroute_types::Money;

    fn offer(carrier: u16, tier: u8, cost: u64, weight: u32) -> Offer {
        Offer {
            cost: Money::from_micros(cost),
            weight,
            carrier: CarrierIndex(carrier),
            tier,
            own: true,
        }
    }
    fn order(route: &Route<'_>) -> Vec<u16> {
        route.iter().map(|o| o.carrier.0).collect()
    }
    fn state(state: HealthState, penalty: f32) -> CarrierHealth {
        CarrierHealth { state, penalty }
    }

    #[test]
    fn penalty_reorders_within_a_tier_only() {
        let offers = [offer(0, 0, 100, 1), offer(1, 0, 150, 1), offer(2, 1, 10, 1)];
        let health = [
            state(HealthState::Degraded, 2.0),
            CarrierHealth::HEALTHY,
            CarrierHealth::HEALTHY,
        ];
        let route = rank(&offers, false, &health[..], 1.0, None);
        assert_eq!(order(&route), vec![1, 0, 2]);
        assert!(!route.panic_mode);
    }

    #[test]
    fn ejected_are_skipped_unless_all_are() {
        let offers = [offer(0, 0, 100, 1), offer(1, 0, 150, 1)];
        let ejected = state(HealthState::Ejected, 1.0);
        let route = rank(
            &offers,
            false,
            &[ejected, CarrierHealth::HEALTHY][..],
            1.0,
            None,
        );
        assert_eq!(
            (order(&route), route.panic_mode, route.len()),
            (vec![1], false, 1)
        );
        let route = rank(&offers, false, &[ejected, ejected][..], 1.0, None);
        assert_eq!((order(&route), route.panic_mode), (vec![0, 1], true));
    }

    #[test]
    fn at_most_the_allowed_share_is_skipped() {
        struct Share(Vec<CarrierHealth>, f32);
        impl HealthView for Share {
            fn health(&self, c: CarrierIndex) -> CarrierHealth {
                self.0[c.get()]
            }
            fn max_ejected_share(&self) -> f32 {
                self.1
            }
        }
        let offers = [
            offer(0, 0, 100, 1),
            offer(1, 0, 150, 1),
            offer(2, 0, 200, 1),
        ];
        let ejected = state(HealthState::Ejected, 3.0);
        let health = vec![ejected, ejected, CarrierHealth::HEALTHY];
        // Half of three: one may be skipped; the first ejected in static order stays, ranked
        // by its effective cost (100 × 3 = 300 > 200).
        let route = rank(&offers, false, &Share(health.clone(), 0.5), 1.0, None);
        assert_eq!((order(&route), route.panic_mode), (vec![2, 0], false));
        let route = rank(&offers, false, &Share(health, 1.0), 1.0, None);
        assert_eq!(order(&route), vec![2]);
    }

    #[test]
    fn weighted_pick_only_among_equal_healthy() {
        let offers = [
            offer(0, 0, 100, 3),
            offer(1, 0, 100, 1),
            offer(2, 0, 120, 9),
        ];
        // Total weight 4: picks in the top quarter of the u64 range land on carrier 1.
        let route = rank(&offers, false, &crate::AllHealthy, 1.0, Some(u64::MAX));
        assert_eq!(order(&route), vec![1, 0, 2]);
        assert_eq!(route.get(1).map(|o| o.carrier.0), Some(0));
        assert_eq!(route.get(3), None);
        let route = rank(&offers, false, &crate::AllHealthy, 1.0, Some(0));
        assert_eq!(order(&route), vec![0, 1, 2]);
        // A degraded member leaves the group: no split.
        let health = [
            CarrierHealth::HEALTHY,
            state(HealthState::Degraded, 1.5),
            CarrierHealth::HEALTHY,
        ];
        let route = rank(&offers, false, &health[..], 1.0, Some(u64::MAX));
        assert_eq!(order(&route), vec![0, 2, 1]);
        // Healthy members of the group still split when another carrier is degraded.
        let offers = [offer(0, 0, 100, 1), offer(1, 0, 100, 1), offer(2, 0, 90, 1)];
        let health = [
            CarrierHealth::HEALTHY,
            CarrierHealth::HEALTHY,
            state(HealthState::Degraded, 2.0),
        ];
        let route = rank(&offers, false, &health[..], 1.0, Some(u64::MAX));
        assert_eq!(order(&route), vec![1, 0, 2]);
    }

    #[test]
    fn fast_and_slow_paths_agree_when_all_are_healthy() {
        // A health view that reports healthy through the slow path's code: penalty exactly 1.
        struct Slow;
        impl HealthView for Slow {
            fn health(&self, _: CarrierIndex) -> CarrierHealth {
                CarrierHealth::HEALTHY
            }
        }
        let offers = [offer(0, 0, 100, 2), offer(1, 0, 100, 5), offer(2, 1, 50, 1)];
        for pick in [0, u64::MAX / 3, u64::MAX / 2, u64::MAX] {
            let fast = order(&rank(&offers, false, &crate::AllHealthy, 1.0, Some(pick)));
            let (slow, _) = rank_by_health(&offers, &Slow, 1.0, Some(pick));
            let slow = match slow {
                Order::Explicit(p) => p
                    .iter()
                    .map(|&i| offers[usize::from(i)].carrier.0)
                    .collect::<Vec<_>>(),
                Order::Static { .. } => unreachable!(),
            };
            assert_eq!(fast, slow, "pick {pick}");
        }
    }

    #[test]
    fn penalties_within_the_band_share_an_equal_price() {
        let offers = [
            offer(0, 0, 100, 1),
            offer(1, 0, 100, 1),
            offer(2, 0, 101, 1),
        ];
        let slightly = state(HealthState::Degraded, 1.004);
        let health = [CarrierHealth::HEALTHY, slightly, CarrierHealth::HEALTHY];
        // Without a band the slightly degraded carrier never shares: the pick that would
        // choose it leaves its healthy peer first; with one it splits the traffic.
        let exact = rank(&offers, false, &health[..], 1.0, Some(u64::MAX));
        assert_eq!(order(&exact), vec![0, 1, 2]);
        let banded = rank(&offers, false, &health[..], 1.05, Some(u64::MAX));
        assert_eq!(order(&banded), vec![1, 0, 2]);
        let banded = rank(&offers, false, &health[..], 1.05, Some(0));
        assert_eq!(order(&banded), vec![0, 1, 2]);
        // Past the band the penalty counts in full, and ejection is never banded away.
        let worse = [
            CarrierHealth::HEALTHY,
            state(HealthState::Degraded, 1.2),
            CarrierHealth::HEALTHY,
        ];
        assert_eq!(
            order(&rank(&offers, false, &worse[..], 1.05, Some(u64::MAX))),
            vec![0, 2, 1]
        );
        let ejected = [
            CarrierHealth::HEALTHY,
            state(HealthState::Ejected, 1.0),
            CarrierHealth::HEALTHY,
        ];
        assert_eq!(
            order(&rank(&offers, false, &ejected[..], 1.05, None)),
            vec![0, 2]
        );
    }
}
