//! Ranking: tier first, then effective cost (cost × health penalty); ejected carriers last
//! resort only; a weighted random pick among the leading equal-cost healthy group.

use smallvec::SmallVec;
use smsroute_types::Money;

use crate::{CarrierHealth, CarrierIndex, HealthState, HealthView, Offer};

/// A candidate carrier in rank order, with the terms and health that placed it there.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ranked {
    /// The carrier.
    pub carrier: CarrierIndex,
    /// Price per segment (configured, before the health penalty).
    pub cost: Money,
    /// Tier of the carrier's matching row.
    pub tier: u8,
    /// Weight of the carrier's matching row.
    pub weight: u32,
    /// Health when ranked.
    pub health: CarrierHealth,
}

impl Ranked {
    /// Cost × penalty, what ranking compares within a tier.
    pub fn effective_cost(&self) -> f64 {
        self.cost.micros() as f64 * f64::from(self.health.penalty)
    }
}

/// Ranked candidates, best first. Eight fit inline: a prefix rarely has more carriers.
pub type RankedList = SmallVec<[Ranked; 8]>;

/// Ranks `offers` (in static order: tier, cost, weight descending, carrier) under `health`.
///
/// Returns the list and whether panic mode applied (every candidate ejected, so all are used).
/// With `pick`, the leading group of healthy carriers with equal tier and effective cost is
/// split by weight: `pick` (a uniform random `u64`) chooses the first, the rest keep their order.
pub fn rank<H: HealthView + ?Sized>(
    offers: &[Offer],
    health: &H,
    pick: Option<u64>,
) -> (RankedList, bool) {
    let mut out = RankedList::new();
    let mut ejected = 0;
    let mut unit_penalties = true;
    for offer in offers {
        let h = health.health(offer.carrier);
        ejected += usize::from(h.state == HealthState::Ejected);
        unit_penalties &= h.penalty == 1.0;
        out.push(Ranked {
            carrier: offer.carrier,
            cost: offer.cost,
            tier: offer.tier,
            weight: offer.weight,
            health: h,
        });
    }
    let panic_mode = ejected > 0 && ejected == out.len();
    if ejected > 0 && !panic_mode {
        out.retain(|r| r.health.state != HealthState::Ejected);
    }
    // The static order is already right when every penalty is 1; the sort is stable, so
    // equal effective costs keep weight-descending, id order.
    if !unit_penalties {
        out.sort_by(|a, b| {
            a.tier
                .cmp(&b.tier)
                .then(a.effective_cost().total_cmp(&b.effective_cost()))
        });
    }
    if let Some(pick) = pick {
        pick_weighted(&mut out, pick);
    }
    (out, panic_mode)
}

/// Moves a weighted random member of the leading equal-cost healthy group to the front.
fn pick_weighted(ranked: &mut [Ranked], pick: u64) {
    let Some(first) = ranked.first().copied() else {
        return;
    };
    if first.health.state != HealthState::Healthy {
        return;
    }
    let group = ranked
        .iter()
        .take_while(|r| {
            r.tier == first.tier
                && r.cost == first.cost
                && r.health.state == HealthState::Healthy
                && r.health.penalty == first.health.penalty
        })
        .count();
    if group < 2 {
        return;
    }
    let total: u64 = ranked[..group].iter().map(|r| u64::from(r.weight)).sum();
    // Lemire's multiply-shift maps `pick` onto 0..total without a modulo bias worth measuring.
    let mut target = ((u128::from(pick) * u128::from(total)) >> 64) as u64;
    let chosen = ranked[..group]
        .iter()
        .position(|r| {
            let w = u64::from(r.weight);
            if target < w {
                return true;
            }
            target -= w;
            false
        })
        .unwrap_or(0);
    ranked[..=chosen].rotate_right(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(carrier: u16, tier: u8, cost: u64, weight: u32) -> Offer {
        Offer {
            cost: Money::from_micros(cost),
            weight,
            carrier: CarrierIndex(carrier),
            tier,
            own: true,
        }
    }
    fn order(list: &RankedList) -> Vec<u16> {
        list.iter().map(|r| r.carrier.0).collect()
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
        let (ranked, panic) = rank(&offers, &health[..], None);
        assert_eq!(order(&ranked), vec![1, 0, 2]);
        assert!(!panic);
    }

    #[test]
    fn ejected_are_skipped_unless_all_are() {
        let offers = [offer(0, 0, 100, 1), offer(1, 0, 150, 1)];
        let ejected = state(HealthState::Ejected, 1.0);
        let (ranked, panic) = rank(&offers, &[ejected, CarrierHealth::HEALTHY][..], None);
        assert_eq!((order(&ranked), panic), (vec![1], false));
        let (ranked, panic) = rank(&offers, &[ejected, ejected][..], None);
        assert_eq!((order(&ranked), panic), (vec![0, 1], true));
    }

    #[test]
    fn weighted_pick_only_among_equal_healthy() {
        let offers = [
            offer(0, 0, 100, 3),
            offer(1, 0, 100, 1),
            offer(2, 0, 120, 9),
        ];
        // total weight 4: picks in the top quarter of the u64 range land on carrier 1.
        let (ranked, _) = rank(&offers, &crate::AllHealthy, Some(u64::MAX));
        assert_eq!(order(&ranked), vec![1, 0, 2]);
        let (ranked, _) = rank(&offers, &crate::AllHealthy, Some(0));
        assert_eq!(order(&ranked), vec![0, 1, 2]);
        // A degraded member leaves the group: no split.
        let health = [
            CarrierHealth::HEALTHY,
            state(HealthState::Degraded, 1.5),
            CarrierHealth::HEALTHY,
        ];
        let (ranked, _) = rank(&offers, &health[..], Some(u64::MAX));
        assert_eq!(order(&ranked), vec![0, 2, 1]);
    }
}
