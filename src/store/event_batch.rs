//! A batch of webhook events applied in a handful of statements, whatever its size: the ids are
//! recorded in one multi-row insert, and each run of `participant_joined`/`left` events is folded
//! into its net effect per participant and written with one upsert and one delete. Statements,
//! not rows, are what a batch costs (each is a round trip to PostgreSQL), so a batch of 8 events
//! takes 5 statements instead of 26. It runs on any `Statements`: a sqlx transaction, or the
//! SQLite writer's own connection.
//!
//! The result is the same as applying the events one by one, in order (the store tests compare
//! both); the fold below is where that is argued.
//!
//! Asked to (`counting`: SQLite, whose mirror is exclusive), a batch also says how it changed
//! each room's participant count, from the rows it found before writing: one lookup of the
//! participants it touches, where a `COUNT(*)` afterwards would walk every row of each room.

use std::collections::{HashMap, HashSet};

use super::presence::apply_change;
use super::statements::{Kind, Param, Statements, Value};
use super::{now_ms, Applied, Event, LiveParticipant, PresenceChange, Result};

/// Records each id not seen before and applies the changes of those events, in order. Returns
/// one outcome per event: an id repeated (before, or earlier in `events`) is a `Duplicate`.
pub(super) async fn apply(
    db: &mut impl Statements,
    events: &[&Event],
    counting: bool,
) -> Result<(Vec<Applied>, CountChanges)> {
    let fresh = record_ids(db, events).await?;
    let mut changes = CountChanges::new();
    let mut outcomes: Vec<Applied> = fresh
        .iter()
        .map(|&f| match f {
            true => Applied::Applied,
            false => Applied::Duplicate,
        })
        .collect();
    // Participant events are folded run by run; any other event (a room starting or finishing
    // changes who can be in it) ends the run and is applied on its own, in its place.
    let mut run: Vec<(usize, &Event)> = Vec::new();
    for (i, e) in events.iter().enumerate().filter(|(i, _)| fresh[*i]) {
        match &e.change {
            PresenceChange::Joined { .. } | PresenceChange::Left { .. } => run.push((i, e)),
            other => {
                apply_run(db, &run, &mut outcomes, counting.then_some(&mut changes)).await?;
                run.clear();
                apply_change(db, other).await?;
                if let PresenceChange::RoomFinished { room } = other {
                    // Its participants are deleted, whatever the room.
                    change(&mut changes, room, CountChange::To(0));
                }
            }
        }
    }
    apply_run(db, &run, &mut outcomes, counting.then_some(&mut changes)).await?;
    Ok((outcomes, changes))
}

/// How a batch changed a room's participant count: by so many, or to so many (a finished room
/// is emptied whatever it held).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CountChange {
    By(i64),
    To(i64),
}

/// Per room name.
pub(super) type CountChanges = HashMap<String, CountChange>;

impl CountChange {
    /// This change followed by `next`.
    fn then(self, next: CountChange) -> CountChange {
        match (self, next) {
            (_, CountChange::To(n)) => CountChange::To(n),
            (CountChange::By(a), CountChange::By(b)) => CountChange::By(a + b),
            (CountChange::To(a), CountChange::By(b)) => CountChange::To(a + b),
        }
    }

    /// The count after this change of `before`.
    pub fn applied_to(self, before: i64) -> i64 {
        match self {
            CountChange::By(d) => before + d,
            CountChange::To(n) => n,
        }
    }
}

fn change(changes: &mut CountChanges, room: &str, next: CountChange) {
    let c = changes.get(room).map_or(next, |c| c.then(next));
    changes.insert(room.to_string(), c);
}

/// `($1, $2, $3), ($4, $5, $6), …`: `rows` tuples of `width` placeholders.
fn tuples(rows: usize, width: usize) -> String {
    (0..rows)
        .map(|r| {
            let cells: Vec<String> = (1..=width).map(|c| format!("${}", r * width + c)).collect();
            format!("({})", cells.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `$1, $2, …, $n`.
fn list(n: usize) -> String {
    (1..=n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Inserts the batch's distinct ids in one statement; an event is fresh when its id was
/// inserted now and it is the id's first occurrence in the batch.
async fn record_ids(db: &mut impl Statements, events: &[&Event]) -> Result<Vec<bool>> {
    let mut first: HashMap<&str, usize> = HashMap::new();
    for (i, e) in events.iter().enumerate() {
        first.entry(e.id.as_str()).or_insert(i);
    }
    let mut distinct: Vec<usize> = first.values().copied().collect();
    distinct.sort_unstable();
    let sql = format!(
        "INSERT INTO webhook_events (id, event, received_at) VALUES {} \
         ON CONFLICT DO NOTHING RETURNING id",
        tuples(distinct.len(), 3)
    );
    let now = now_ms();
    let params: Vec<Param> = distinct
        .iter()
        .flat_map(|&i| {
            [
                Param::Text(&events[i].id),
                Param::Text(&events[i].name),
                Param::Int(now),
            ]
        })
        .collect();
    let inserted: HashSet<String> = db
        .rows(&sql, &params, &[Kind::Text])
        .await?
        .into_iter()
        .filter_map(|row| row.into_iter().next()?.into_text())
        .collect();
    Ok(events
        .iter()
        .enumerate()
        .map(|(i, e)| first[e.id.as_str()] == i && inserted.contains(&e.id))
        .collect())
}

/// What a run of events leaves for one participant (room and identity) once folded.
#[derive(Debug, PartialEq)]
enum Net<'a> {
    /// The last word was a join: this session is in the room.
    Present(&'a LiveParticipant),
    /// A join and then its own leave: whatever row there was is gone.
    Gone,
    /// Only leaves, of sessions this run never saw join: each removes its session if it is the
    /// one stored (a late leave never removes a newer session).
    Left(Vec<&'a str>),
}

/// Folds one participant's events, in order. Argued against applying them one by one:
/// - a join upserts the session whatever was stored, so after a join only later events count;
/// - a leave after a join in the same run removes that session if the sids match (the row is
///   then gone whatever was stored before), and does nothing otherwise;
/// - leaves before any join remove the stored row only if its sid is one of theirs.
fn fold<'a>(net: Option<Net<'a>>, change: &'a PresenceChange) -> Option<Net<'a>> {
    match (net, change) {
        (_, PresenceChange::Joined { participant, .. }) => Some(Net::Present(participant)),
        (Some(Net::Present(p)), PresenceChange::Left { sid, .. }) if p.sid == *sid => {
            Some(Net::Gone)
        }
        (None, PresenceChange::Left { sid, .. }) => Some(Net::Left(vec![sid])),
        (Some(Net::Left(mut sids)), PresenceChange::Left { sid, .. }) => {
            sids.push(sid);
            Some(Net::Left(sids))
        }
        (net, _) => net,
    }
}

/// Applies a run of joins and leaves: one query for the rooms involved and the bans of those
/// who joined, one upsert and one delete; marks the joins of banned people `AppliedBanned`.
async fn apply_run(
    db: &mut impl Statements,
    run: &[(usize, &Event)],
    outcomes: &mut [Applied],
    changes: Option<&mut CountChanges>,
) -> Result<()> {
    if run.is_empty() {
        return Ok(());
    }
    let rooms: Vec<&str> = distinct(run.iter().filter_map(|(_, e)| e.change.room()));
    let joined: Vec<&str> = distinct(run.iter().filter_map(|(_, e)| match &e.change {
        PresenceChange::Joined { participant, .. } => Some(participant.identity.as_str()),
        _ => None,
    }));
    let (known, banned) = rooms_and_bans(db, &rooms, &joined).await?;

    // Only rooms bedrud created are tracked: a join to another room changes nothing.
    let mut net: HashMap<(&str, &str), Net> = HashMap::new();
    for (i, e) in run {
        let (room, identity) = match &e.change {
            PresenceChange::Joined { room, participant } => {
                if banned.contains(&(room.as_str(), participant.identity.as_str())) {
                    outcomes[*i] = Applied::AppliedBanned;
                }
                if !known.contains(room.as_str()) {
                    continue;
                }
                (room.as_str(), participant.identity.as_str())
            }
            PresenceChange::Left { room, identity, .. } => (room.as_str(), identity.as_str()),
            _ => unreachable!("a run holds only joins and leaves"),
        };
        let folded = fold(net.remove(&(room, identity)), &e.change);
        if let Some(n) = folded {
            net.insert((room, identity), n);
        }
    }
    if let Some(changes) = changes {
        let stored = stored_sessions(db, &net).await?;
        for (&(room, identity), n) in &net {
            let had = stored
                .get(&(room.to_string(), identity.to_string()))
                .map(String::as_str);
            let by = match n {
                Net::Present(_) if had.is_none() => 1,
                Net::Gone if had.is_some() => -1,
                Net::Left(sids) if had.is_some_and(|s| sids.contains(&s)) => -1,
                _ => 0,
            };
            if by != 0 {
                change(changes, room, CountChange::By(by));
            }
        }
    }
    upsert(db, &net).await?;
    delete(db, &net).await
}

/// The session stored now for each participant in `net`, if any.
async fn stored_sessions(
    db: &mut impl Statements,
    net: &HashMap<(&str, &str), Net<'_>>,
) -> Result<HashMap<(String, String), String>> {
    if net.is_empty() {
        return Ok(HashMap::new());
    }
    let keys: Vec<(&str, &str)> = net.keys().copied().collect();
    let clauses: Vec<String> = (0..keys.len())
        .map(|i| format!("(room_name = ${} AND identity = ${})", 2 * i + 1, 2 * i + 2))
        .collect();
    let sql = format!(
        "SELECT room_name, identity, sid FROM participants WHERE {}",
        clauses.join(" OR ")
    );
    let params: Vec<Param> = keys
        .iter()
        .flat_map(|(room, identity)| [Param::Text(room), Param::Text(identity)])
        .collect();
    let rows = db
        .rows(&sql, &params, &[Kind::Text, Kind::Text, Kind::Text])
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|row| match <[Value; 3]>::try_from(row).ok()? {
            [Value::Text(room), Value::Text(identity), Value::Text(sid)] => {
                Some(((room, identity), sid))
            }
            _ => None,
        })
        .collect())
}

fn distinct<'a>(items: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut seen = HashSet::new();
    items.filter(|i| seen.insert(*i)).collect()
}

/// Which of `rooms` bedrud knows, and which of `identities` are banned from which of them.
async fn rooms_and_bans<'a>(
    db: &mut impl Statements,
    rooms: &[&'a str],
    identities: &[&'a str],
) -> Result<(HashSet<String>, HashSet<(&'a str, &'a str)>)> {
    let bans = match identities.is_empty() {
        // A never-true condition keeps one statement shape for runs without joins.
        true => "1 = 0".to_string(),
        false => format!(
            "b.identity IN ({})",
            (rooms.len() + 1..=rooms.len() + identities.len())
                .map(|i| format!("${i}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let sql = format!(
        "SELECT r.name AS name, b.identity AS identity FROM rooms r \
         LEFT JOIN room_bans b ON b.room_id = r.id AND {bans} WHERE r.name IN ({})",
        list(rooms.len())
    );
    let params: Vec<Param> = rooms
        .iter()
        .chain(identities)
        .map(|r| Param::Text(r))
        .collect();
    let mut known = HashSet::new();
    let mut banned = HashSet::new();
    for row in db.rows(&sql, &params, &[Kind::Text, Kind::Text]).await? {
        let mut cells = row.into_iter();
        let name = cells.next().and_then(|c| c.into_text()).unwrap_or_default();
        if let Some(identity) = cells.next().and_then(|c| c.into_text()) {
            // Keep the caller's borrowed strings, so the set needs no owned pairs.
            let room = rooms.iter().find(|r| **r == name);
            let who = identities.iter().find(|i| **i == identity);
            if let (Some(room), Some(who)) = (room, who) {
                banned.insert((*room, *who));
            }
        }
        known.insert(name);
    }
    Ok((known, banned))
}

async fn upsert(db: &mut impl Statements, net: &HashMap<(&str, &str), Net<'_>>) -> Result<()> {
    let present: Vec<(&str, &LiveParticipant)> = net
        .iter()
        .filter_map(|((room, _), n)| match n {
            Net::Present(p) => Some((*room, *p)),
            _ => None,
        })
        .collect();
    if present.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "INSERT INTO participants (room_name, identity, sid, name, joined_at) VALUES {} \
         ON CONFLICT (room_name, identity) DO UPDATE SET sid = excluded.sid, \
         name = excluded.name, joined_at = excluded.joined_at",
        tuples(present.len(), 5)
    );
    let params: Vec<Param> = present
        .iter()
        .flat_map(|(room, p)| {
            [
                Param::Text(room),
                Param::Text(&p.identity),
                Param::Text(&p.sid),
                Param::Text(&p.name),
                Param::Int(p.joined_at),
            ]
        })
        .collect();
    db.execute(&sql, &params).await?;
    Ok(())
}

async fn delete(db: &mut impl Statements, net: &HashMap<(&str, &str), Net<'_>>) -> Result<()> {
    // (room, identity, the session's sid or None for any session)
    let gone: Vec<(&str, &str, Option<&str>)> = net
        .iter()
        .flat_map(|(&(room, identity), n)| match n {
            Net::Present(_) => Vec::new(),
            Net::Gone => vec![(room, identity, None)],
            Net::Left(sids) => sids.iter().map(|s| (room, identity, Some(*s))).collect(),
        })
        .collect();
    if gone.is_empty() {
        return Ok(());
    }
    let mut next = 0;
    let mut param = || {
        next += 1;
        format!("${next}")
    };
    let clauses: Vec<String> = gone
        .iter()
        .map(|(_, _, sid)| {
            let (r, i) = (param(), param());
            match sid {
                Some(_) => format!("(room_name = {r} AND identity = {i} AND sid = {})", param()),
                None => format!("(room_name = {r} AND identity = {i})"),
            }
        })
        .collect();
    let sql = format!("DELETE FROM participants WHERE {}", clauses.join(" OR "));
    let mut params = Vec::new();
    for (room, identity, sid) in &gone {
        params.extend([Param::Text(room), Param::Text(identity)]);
        params.extend(sid.map(Param::Text));
    }
    db.execute(&sql, &params).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn joined(room: &str, identity: &str, sid: &str) -> PresenceChange {
        PresenceChange::Joined {
            room: room.into(),
            participant: LiveParticipant {
                identity: identity.into(),
                sid: sid.into(),
                name: identity.into(),
                joined_at: 1,
            },
        }
    }

    fn left(room: &str, identity: &str, sid: &str) -> PresenceChange {
        PresenceChange::Left {
            room: room.into(),
            identity: identity.into(),
            sid: sid.into(),
        }
    }

    fn fold_all(changes: &[PresenceChange]) -> Option<Net<'_>> {
        changes.iter().fold(None, fold)
    }

    #[test]
    fn a_join_and_its_own_leave_remove_the_row_whatever_was_stored() {
        let c = [joined("r", "a", "S1"), left("r", "a", "S1")];
        assert_eq!(fold_all(&c), Some(Net::Gone));
    }

    #[test]
    fn a_late_leave_of_an_older_session_keeps_the_newer_one() {
        let c = [joined("r", "a", "S2"), left("r", "a", "S1")];
        assert!(matches!(fold_all(&c), Some(Net::Present(p)) if p.sid == "S2"));
    }

    #[test]
    fn leaves_without_a_join_remove_only_their_own_sessions() {
        let c = [left("r", "a", "S1"), left("r", "a", "S0")];
        assert_eq!(fold_all(&c), Some(Net::Left(vec!["S1", "S0"])));
    }

    #[test]
    fn the_last_join_wins() {
        let c = [
            left("r", "a", "S0"),
            joined("r", "a", "S1"),
            left("r", "a", "S1"),
            joined("r", "a", "S2"),
        ];
        assert!(matches!(fold_all(&c), Some(Net::Present(p)) if p.sid == "S2"));
    }

    #[test]
    fn count_changes_compose_in_order() {
        use CountChange::{By, To};
        assert_eq!(By(2).then(By(-1)), By(1));
        assert_eq!(By(2).then(To(0)).then(By(1)), To(1));
        assert_eq!(To(3).then(By(-1)).applied_to(10), 2);
        assert_eq!(By(-1).applied_to(4), 3);
    }

    #[test]
    fn placeholders_are_numbered_across_rows() {
        assert_eq!(tuples(2, 3), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(list(3), "$1, $2, $3");
    }
}
