//! The route's choices and words, without a server: which relay is chosen, what a relay set
//! aside for its certificate leaves, how long to wait after a failure.

use super::*;
use crate::smtp::Endpoint;

fn relay(name: RelayName, port: u16) -> Relay {
    let endpoint = Endpoint::loopback(port);
    Relay::new(name, &endpoint, None, None, Duration::from_secs(1)).unwrap()
}

#[test]
fn a_relay_set_aside_for_its_certificate_is_not_chosen_again_and_names_the_stop() {
    let route = Route::new(
        relay(RelayName::Primary, 1),
        Some(relay(RelayName::Fallback, 2)),
        Failover::default(),
    );
    assert!(route.set_aside(route.primary(), "untrusted"));
    assert!(route.set_aside(route.primary(), "found again by another connection"));
    assert_eq!(route.choose().name, RelayName::Fallback);
    assert!(!route.should_leave(route.choose()), "no handing back to it");
    // The fallback cannot carry the run either: no relay is left.
    assert!(!route.set_aside(route.choose(), "untrusted too"));
    assert_eq!(
        route.give_up("unreachable".into()),
        Stopped::Untrusted {
            relay: RelayName::Primary,
            why: "untrusted".into()
        }
    );
}

#[test]
fn a_relay_set_aside_never_claims_the_other_carries_the_run() {
    let route = Route::new(
        relay(RelayName::Primary, 1),
        Some(relay(RelayName::Fallback, 2)),
        Failover::default(),
    );
    let instead = |set_aside| route.instead(set_aside, &route.state.lock().unwrap());
    assert_eq!(
        instead(RelayName::Primary),
        "connections go to the fallback relay instead"
    );
    assert_eq!(
        instead(RelayName::Fallback),
        "connections go to the primary relay instead"
    );
    // The primary went down, and the fallback, which took over, is set aside: the primary
    // is all there is, and it is known not to answer.
    route.failed(
        route.primary(),
        &Trouble::Broken("connection refused".into()),
    );
    let said = instead(RelayName::Fallback);
    assert!(
        said.starts_with(
            "connections go back to the primary relay instead, though it has not answered since \
             its last try:"
        ) && said.ends_with("the run stops if it still does not"),
        "{said}"
    );
}

#[test]
fn without_a_fallback_a_relay_is_not_set_aside() {
    let route = Route::new(relay(RelayName::Primary, 1), None, Failover::default());
    assert!(!route.set_aside(route.primary(), "untrusted"));
    assert_eq!(
        route.give_up("unreachable".into()),
        Stopped::Unreachable("unreachable".into())
    );
}

#[test]
fn tries_under_way_count_against_the_limit_of_failures_in_a_row() {
    let failover = Failover {
        max_connect_failures: 2,
        ..Failover::default()
    };
    let route = Route::new(relay(RelayName::Primary, 1), None, failover);
    let refused = Trouble::Broken("connection refused".into());
    let first = route.start_try().unwrap().expect("room for a try");
    let second = route.start_try().unwrap().expect("room for a try");
    assert!(
        route.start_try().unwrap().is_none(),
        "the two under way would reach the limit if they failed"
    );
    route.failed(route.primary(), &refused);
    drop(first);
    assert!(
        route.start_try().unwrap().is_none(),
        "one failed, one under way"
    );
    // The second one connected: one more try may go.
    drop(second);
    let third = route.start_try().unwrap().expect("room for a try");
    route.failed(route.primary(), &refused);
    drop(third);
    assert!(matches!(route.start_try(), Err(Stopped::Unreachable(_))));
}

#[test]
fn backoff_doubles_with_jitter_up_to_the_cap() {
    let ms = |streak| backoff(streak).as_millis();
    assert!((200..=300).contains(&ms(1)), "{}", ms(1));
    assert!((400..=600).contains(&ms(2)), "{}", ms(2));
    assert!((6400..=9600).contains(&ms(30)), "{}", ms(30));
}
