//! The dedupe by `eventId`: a handler claims its batch's eventIds in `processed_events` inside
//! its own transaction, as a CTE of its first statement ([`claimed_cte!`]), and [`Claims`]
//! tells fresh records from redeliveries by what the claim inserted. The claim commits with
//! the effects or not at all, so a redelivered batch changes nothing twice.

/// The CTE that claims a batch's eventIds, written at the head of a handler's first statement
/// (so the claim costs no round trip of its own): `WITH claimed_cte!(), … SELECT
/// ARRAY(SELECT event_id FROM claimed), …`, with [`Claims::event_ids`] bound as `$1` and
/// [`Claims::topics`] as `$2`. A macro, so `concat!` makes the whole statement a literal.
#[macro_export]
macro_rules! claimed_cte {
    () => {
        "claimed AS (INSERT INTO processed_events (event_id, topic) SELECT * FROM unnest($1::text[], $2::text[]) \
         ON CONFLICT DO NOTHING RETURNING event_id)"
    };
}

/// A batch's `(eventId, topic)`s, claimed by [`claimed_cte!`] inside the handler's
/// transaction. [`Claims::fresh`] reads what the claim inserted: `true` for an eventId seen
/// for the first time, `false` for a redelivery (already in the table, or earlier in the same
/// batch) — the handler then changes nothing for that record and reports
/// [`crate::consumer::Outcome::Duplicate`].
pub struct Claims<'a> {
    claims: Vec<(&'a str, &'a str)>,
    /// Each eventId once: one statement cannot insert a key twice.
    unique: Vec<(&'a str, &'a str)>,
}

impl<'a> Claims<'a> {
    pub fn new(claims: Vec<(&'a str, &'a str)>) -> Claims<'a> {
        let mut first = std::collections::HashSet::with_capacity(claims.len());
        let unique = claims.iter().copied().filter(|(event_id, _)| first.insert(*event_id)).collect();
        Claims { claims, unique }
    }

    /// `$1` of [`claimed_cte!`].
    pub fn event_ids(&self) -> Vec<&'a str> {
        self.unique.iter().map(|(event_id, _)| *event_id).collect()
    }

    /// `$2` of [`claimed_cte!`].
    pub fn topics(&self) -> Vec<&'a str> {
        self.unique.iter().map(|(_, topic)| *topic).collect()
    }

    /// One flag per record, in the batch's order, from the eventIds the claim inserted.
    pub fn fresh(&self, inserted: Vec<String>) -> Vec<bool> {
        // Seeded faults (self-test): no dedupe at all, or one kept in memory (forgotten on restart).
        static CLAIMED_IN_MEMORY: std::sync::Mutex<std::collections::BTreeSet<String>> =
            std::sync::Mutex::new(std::collections::BTreeSet::new());
        if crate::failpoint::active("kit::no-dedupe") {
            return vec![true; self.claims.len()];
        }
        if crate::failpoint::active("kit::dedupe-in-memory") {
            let mut claimed = CLAIMED_IN_MEMORY.lock().expect("claims");
            return self.claims.iter().map(|(event_id, _)| claimed.insert(event_id.to_string())).collect();
        }
        let mut fresh: std::collections::HashSet<String> = inserted.into_iter().collect();
        // `remove`: only the first record carrying an eventId is fresh.
        self.claims.iter().map(|(event_id, _)| fresh.remove(*event_id)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_first_record_of_an_inserted_event_id_is_fresh() {
        let claims = Claims::new(vec![("e1", "t"), ("e2", "t"), ("e1", "t"), ("e3", "t")]);
        assert_eq!(claims.event_ids(), ["e1", "e2", "e3"], "each eventId is inserted once");
        assert_eq!(claims.topics(), ["t", "t", "t"]);
        // e2 was in the table already (not inserted): a redelivery.
        let fresh = claims.fresh(vec!["e3".into(), "e1".into()]);
        assert_eq!(fresh, [true, false, false, true]);
    }
}
