//! Table tests of the playbook triggers that escalate on their own (fraud, security, legal,
//! safety, strong negative sentiment, caller loops, human requests): each with phrasings the
//! way people talk on the phone, and look-alikes that must not hand off. Calm voice, caller
//! lines four seconds apart, default configuration.
//!
//! Size: a table of phrasings (at least 15 positive and 15 negative per trigger), test-only.

use super::*;

const GAP_MS: u64 = 4000;

fn model() -> Arc<ToneModel> {
    let mut m = ToneModel::bundled();
    m.threshold = 0.5;
    Arc::new(m)
}

/// Caller lines four seconds apart (and an agent line in between, so it is a conversation);
/// returns the handoff and every event.
fn call(cfg: &DetectorConfig, caller: &[&str]) -> (Option<Handoff>, Vec<Event>) {
    let mut d = Detector::new("CA-play", cfg, model());
    let mut out = Vec::new();
    for (i, text) in caller.iter().enumerate() {
        let t_ms = 1000 + i as u64 * GAP_MS;
        let line = |speaker, text: &str, confidence| TranscriptLine {
            t_ms: Some(t_ms),
            speaker,
            text: text.to_owned(),
            is_final: true,
            confidence,
        };
        d.on_transcript(t_ms, &line(Track::Caller, text, None), &mut out);
        let reply = line(
            Track::Agent,
            "Okay, let me take a look at that for you.",
            Some(0.9),
        );
        d.on_transcript(t_ms + 2000, &reply, &mut out);
    }
    let h = out.iter().find_map(|e| match &e.kind {
        EventKind::Handoff(h) => Some(h.clone()),
        _ => None,
    });
    (h, out)
}

fn topic_of(h: &Handoff) -> Option<&str> {
    h.reasons
        .iter()
        .find(|r| r.signal == Signal::Topic)
        .and_then(|r| r.evidence.matched.as_deref())
        .map(|m| m.split(':').next().unwrap_or(m))
}

/// One line per phrasing: the positives hand off with `topic` first, the negatives do not
/// hand off at all.
fn topic_table(topic: &str, positive: &[&str], negative: &[&str]) {
    assert!(positive.len() >= 15 && negative.len() >= 15);
    let cfg = DetectorConfig::default();
    let mut failures = Vec::new();
    for text in positive {
        match call(&cfg, &[text]).0 {
            Some(h) if h.reasons[0].signal == Signal::Topic && topic_of(&h) == Some(topic) => {}
            Some(h) => failures.push(format!("wrong reason {:?}: {text}", topic_of(&h))),
            None => failures.push(format!("missed: {text}")),
        }
    }
    for text in negative {
        if let Some(h) = call(&cfg, &[text]).0 {
            failures.push(format!("false handoff ({:?}): {text}", topic_of(&h)));
        }
    }
    assert!(failures.is_empty(), "{topic}:\n{}", failures.join("\n"));
}

#[test]
fn fraud_escalates() {
    topic_table(
        "fraud",
        &[
            "There are charges on my card I never made.",
            "I think someone is using my card fraudulently.",
            "there's a purchase on here I did not make",
            "I got scammed, some guy on the phone took my money",
            "my wallet was stolen and they've been using the card",
            "I didn't authorize this payment",
            "someone used my card in another state",
            "this is fraud, plain and simple",
            "I never made that purchase, I was home all day",
            "there's a withdrawal I never made",
            "my identity was stolen",
            "I think I'm the victim of identity theft",
            "somebody's using my credit card online",
            "these are unauthorized transactions",
            "it's a scam, I never ordered anything from them",
            "my card got skimmed at a gas station",
        ],
        &[
            "I'd like to set up a travel notice so you don't flag it as fraud",
            "it's not fraud, I just forgot I bought it",
            "I made a purchase yesterday and want to check it went through",
            "can you tell me what my credit limit is",
            "I need a new card, mine is worn out",
            "the charge is fine, I just want a receipt",
            "I never made it to the store, can I still return it online",
            "my card isn't working at the ATM",
            "I want to change my PIN",
            "the payment didn't go through",
            "no, nothing was stolen, I just misplaced my card and found it",
            "how do I add my daughter as an authorized user",
            "I'd like to check my last five transactions",
            "my statement looks a bit different this month",
            "could you send me a new debit card",
        ],
    );
}

#[test]
fn security_escalates() {
    topic_table(
        "security",
        &[
            "I think my account got hacked",
            "someone got into my account last night",
            "someone logged in from a place I've never been",
            "somebody changed my password and now I can't get in",
            "my password was changed and it wasn't me",
            "I got a verification code I did not request",
            "someone changed my email on the account",
            "I'm locked out of my account and I think someone else is in there",
            "I got a text about a login from a device I don't recognize",
            "my email was hacked and now they're in my bank account",
            "I think I fell for a phishing email",
            "someone has access to my account",
            "I think they did a sim swap on my phone",
            "my account has been compromised",
            "there was a suspicious login on my profile",
            "someone ported my number to another carrier",
        ],
        &[
            "I'd like to change my password please",
            "how do I reset my password, I forgot it",
            "I changed my email address last week, can you update it",
            "I need a new verification code, the last one expired",
            "can I log in with my phone number",
            "I can't remember my username",
            "the app keeps logging me out",
            "I want to add two factor authentication",
            "how do I update my phone number",
            "I'm trying to log in but the page won't load",
            "my son set up the account for me",
            "what's the password requirement, how many characters",
            "I got a new phone and need to set up the app again",
            "I want to turn on login alerts",
            "is my account set up for paperless billing",
        ],
    );
}

#[test]
fn legal_escalates() {
    topic_table(
        "legal",
        &[
            "If this isn't fixed today I'm calling my lawyer.",
            "I'm going to sue you",
            "my attorney will be in touch",
            "I'll see you in court",
            "I'm taking you to small claims",
            "I'm talking to a lawyer about this",
            "I'm going to file a lawsuit",
            "you'll be hearing from my solicitor",
            "I'm considering legal action",
            "I will sue this company",
            "there should be a class action against you people",
            "my lawyer says this is illegal",
            "I've already contacted an attorney",
            "I want your legal department",
            "I'm suing you for the damages",
        ],
        &[
            "my daughter is a lawyer, she told me to read the contract",
            "I'm not going to sue anyone, I just want it fixed",
            "my sister Sue is on the account too",
            "I'm at the tennis court, can you hear me",
            "I'm a lawyer and I need to update my billing address",
            "can you send the bill to my lawyer friend",
            "I need a copy of my contract",
            "the food court near the store had your kiosk",
            "I'm calling on behalf of my mother, I have power of attorney",
            "I don't want to get lawyers involved",
            "what are your terms and conditions",
            "can I speak about my bill",
            "I need to update my address",
            "I read your privacy policy",
            "the law firm I work for needs an invoice",
        ],
    );
}

#[test]
fn safety_escalates() {
    topic_table(
        "safety",
        &[
            "I smell gas in my kitchen",
            "there's a gas leak in the building",
            "the meter is sparking",
            "the charger caught fire",
            "there's smoke coming out of the box",
            "the battery exploded",
            "someone is threatening me",
            "my neighbour got hurt by the fallen line",
            "the cable is down in the street and it looks dangerous",
            "I think there's carbon monoxide in the house",
            "I don't feel safe, this is an emergency",
            "I got an electric shock from the outlet",
            "my son is injured",
            "I want to end my life",
            "the wire is on fire",
            "he's been threatening to hurt me",
        ],
        &[
            "I need to update my emergency contact",
            "I got fired last month, can I pause my payments",
            "I want to order a fire stick",
            "my smoke detector needs a battery",
            "I quit smoking, I want to change my health plan",
            "the fire station down the road has your billboard",
            "can I set up an emergency fund with you",
            "the gas bill is higher than usual",
            "I need to pay my gas bill",
            "I'm in no danger, I just have a question",
            "it's not an emergency, I just want to check my balance",
            "my feelings aren't hurt, I just want a refund",
            "I'd like to change my plan",
            "is the outage over in my area",
            "my internet is slow",
        ],
    );
}

#[test]
fn human_requests_escalate() {
    let cfg = DetectorConfig::default();
    let positive = [
        "Can I just talk to a real person please?",
        "get me a human",
        "representative",
        "operator, operator",
        "I want to speak to a manager",
        "put me through to someone",
        "can you transfer me to an agent",
        "let me talk to somebody who can actually help",
        "I need a real human being",
        "just connect me to a live agent",
        "I'd like to speak with a supervisor",
        "is there a person I can talk to",
        "give me a representative right now",
        "I don't want the robot, I want a person",
        "transfer me please",
        "can I get a human on the line",
    ];
    let negative = [
        "the rep at the dealership sent me to you",
        "I don't need an agent, I just want my balance",
        "are you a real person?",
        "my manager told me to call about the invoice",
        "I talked to a representative yesterday and she was great",
        "is this a recording?",
        "no, not a representative, I'm fine with you",
        "someone stole my parcel from the porch",
        "my agent at the insurance office handles that",
        "the operator at the hotel gave me your number",
        "I don't want to talk to a person, you're fine",
        "I spoke to your supervisor last week",
        "the person I spoke to before said it was sorted",
        "please don't transfer me",
        "I need a receipt for my records",
    ];
    let mut failures = Vec::new();
    for text in positive {
        match call(&cfg, &[text]).0 {
            Some(h) if h.reasons[0].signal == Signal::HumanRequest => {}
            Some(h) => failures.push(format!("wrong reason {:?}: {text}", h.reasons[0].signal)),
            None => failures.push(format!("missed: {text}")),
        }
    }
    for text in negative {
        if call(&cfg, &[text]).0.is_some() {
            failures.push(format!("false handoff: {text}"));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

const STRONG: &[&str] = &[
    "This is absolutely ridiculous.",
    "You people are useless, this is the worst service I have ever had.",
    "I'm so sick and tired of this",
    "this is a complete waste of my time",
    "what the hell is wrong with you people",
    "this is the worst company I have ever dealt with",
    "I'm absolutely furious",
    "are you kidding me? this is pathetic",
    "this is a joke, an absolute disgrace",
    "I'm fed up with this terrible service",
    "you are completely incompetent",
    "this is unacceptable, totally unacceptable",
    "I am so angry right now",
    "honestly this is horrible, just horrible",
    "this is a nightmare and you're making it worse",
    "I hate this stupid system",
];

#[test]
fn two_strongly_negative_turns_escalate() {
    let cfg = DetectorConfig::default();
    let mut failures = Vec::new();
    for (i, text) in STRONG.iter().enumerate() {
        let other = STRONG[(i + 1) % STRONG.len()];
        match call(&cfg, &[text, other]).0 {
            Some(h) if h.reasons[0].signal == Signal::Sentiment => {}
            Some(h) => failures.push(format!("wrong reason {:?}: {text}", h.reasons[0].signal)),
            None => failures.push(format!("missed: {text} / {other}")),
        }
        // One such turn in a calm voice is not enough.
        if call(&cfg, &[text]).0.is_some() {
            failures.push(format!("one line handed off: {text}"));
        }
    }
    let negative = [
        "the queue at the post office was a nightmare, never mind",
        "that's a bit annoying",
        "hmm, not great",
        "I'm a little disappointed",
        "the traffic on the highway was terrible this morning",
        "my day at work was awful, anyway I have a question about my bill",
        "it's not your fault, the system is slow",
        "I'm not angry, just confused",
        "that's not bad at all",
        "oh no, I forgot my account number",
        "ugh, hold on, let me find it",
        "the weather is horrible today",
        "it was a nightmare at the airport, just kidding it was fine",
        "sorry, I'm a bit slow today",
        "I'm not upset, I just want to understand the charge",
    ];
    // Two different such lines in a row (the same line twice would also be a loop).
    for (i, text) in negative.iter().enumerate() {
        let next = negative[(i + 1) % negative.len()];
        if let Some(h) = call(&cfg, &[text, next]).0 {
            failures.push(format!("false handoff ({:?}): {text}", h.reasons[0].signal));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn one_strongly_negative_turn_with_rising_tone_escalates() {
    let cfg = DetectorConfig::default();
    let mut d = Detector::new("CA-tone", &cfg, model());
    let mut out = Vec::new();
    let f = |t_ms| Frame {
        t_ms,
        vad: true,
        speech: true,
        ..Default::default()
    };
    // Tone above threshold for 300 ms: rising but not yet counted (min duration 500 ms).
    for t in (1000..1300).step_by(10) {
        d.on_scored_frame(Track::Caller, &f(t), None, 0.7, &mut out);
    }
    assert!(!d.handed_off());
    let line = TranscriptLine {
        t_ms: Some(1300),
        speaker: Track::Caller,
        text: STRONG[0].to_owned(),
        is_final: true,
        confidence: None,
    };
    d.on_transcript(1300, &line, &mut out);
    assert!(d.handed_off());
    // A calm voice with the same words does not.
    let (h, _) = call(&cfg, &[STRONG[0]]);
    assert!(h.is_none());
}

/// The same question three times in other words escalates (the second unresolved repeat);
/// twice weighs in only.
#[test]
fn caller_loops_escalate_at_the_second_repeat() {
    let positive: [[&str; 3]; 15] = [
        [
            "Where is my refund?",
            "I'm asking where my refund is.",
            "I said where is my refund!",
        ],
        [
            "I want to cancel my subscription",
            "I said I want to cancel",
            "cancel my subscription, please, again",
        ],
        [
            "why was I charged a late fee",
            "I'm asking about the late fee charge",
            "again, why is there a late fee on my bill",
        ],
        [
            "when will my package arrive",
            "I'm still asking when my package arrives",
            "I already asked, when does the package arrive",
        ],
        [
            "I need my internet fixed",
            "my internet still needs fixing",
            "I told you, fix my internet",
        ],
        [
            "can you reset my modem",
            "I asked you to reset the modem",
            "again, please reset my modem",
        ],
        [
            "how do I get my deposit back",
            "I want my deposit back",
            "I keep asking about getting my deposit back",
        ],
        [
            "why is my bill so high this month",
            "my bill this month is too high, why",
            "I said, why is this month's bill so high",
        ],
        [
            "I want to change my delivery address",
            "I need to change the delivery address",
            "I already said, change my delivery address",
        ],
        [
            "my card was declined, why",
            "why does my card keep getting declined",
            "I'm asking again why my card was declined",
        ],
        [
            "I want to return these shoes",
            "I said I'm returning the shoes",
            "how do I return the shoes, I keep asking",
        ],
        [
            "can you waive the overdraft fee",
            "please waive that overdraft fee",
            "I'm repeating myself, waive the overdraft fee",
        ],
        [
            "the app won't let me pay my bill",
            "I can't pay my bill in the app",
            "again the app won't let me pay the bill",
        ],
        [
            "when is my appointment",
            "I asked when my appointment is",
            "I told you, when is my appointment",
        ],
        [
            "I need to update my shipping address",
            "I said I need to update the shipping address",
            "again, update my shipping address please",
        ],
    ];
    let negative: [[&str; 3]; 17] = [
        [
            "what's my balance",
            "when is my payment due",
            "what's my credit limit",
        ],
        [
            "I want to pay my bill",
            "thanks, that worked",
            "can I also update my email",
        ],
        [
            "I need help with my bill",
            "I need help with my card",
            "I need help with my address",
        ],
        ["hello", "hello?", "yes"],
        ["okay", "okay thanks", "great, thank you, that's everything"],
        [
            "I'd like to book an appointment",
            "Tuesday works",
            "ten in the morning please",
        ],
        [
            "my name is Maria Lopez",
            "the account number is four five six",
            "my zip code is nine oh two one oh",
        ],
        [
            "can I change my plan",
            "what plans do you have",
            "I'll take the cheaper one",
        ],
        [
            "is the store open on Sunday",
            "what about Saturday",
            "and holidays?",
        ],
        [
            "I want to return a jacket",
            "it's too small",
            "can I exchange it for a larger size instead",
        ],
        [
            "how much is shipping",
            "how long does shipping take",
            "do you ship to Canada",
        ],
        [
            "I'd like to add a line",
            "it's for my son",
            "he needs a phone too",
        ],
        ["sorry, what?", "could you say that again", "oh I see"],
        [
            "I want to pay with a different card",
            "the one ending in four two",
            "yes that one, thank you",
        ],
        [
            "my package arrived",
            "everything was there",
            "I just wanted to say thanks",
        ],
        // The same plain statement three times is not an unanswered ask.
        [
            "Dogs are sitting by the door.",
            "Dogs are sitting by the door.",
            "Dogs are sitting by the door.",
        ],
        [
            "Kids are talking by the door.",
            "Kids are talking by the door.",
            "Kids are talking by the door.",
        ],
    ];
    let cfg = DetectorConfig::default();
    let mut failures = Vec::new();
    for lines in &positive {
        match call(&cfg, lines).0 {
            Some(h) if h.reasons[0].signal == Signal::Loop => {}
            Some(h) => failures.push(format!("wrong reason {:?}: {lines:?}", h.reasons[0].signal)),
            None => failures.push(format!("missed: {lines:?}")),
        }
        if call(&cfg, &lines[..2]).0.is_some() {
            failures.push(format!("handed off at the first repeat: {lines:?}"));
        }
    }
    for lines in &negative {
        if let Some(h) = call(&cfg, lines).0 {
            failures.push(format!(
                "false handoff {:?}: {lines:?}",
                h.reasons[0].signal
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn low_confidence_escalates_after_n_agent_turns_in_a_row() {
    let mut cfg = DetectorConfig::default();
    cfg.low_confidence.escalate_after = 3;
    let run = |confidences: &[f32]| {
        let mut d = Detector::new("CA-lc", &cfg, model());
        let mut out = Vec::new();
        for (i, c) in confidences.iter().enumerate() {
            let t = 1000 + i as u64 * 3000;
            let line = TranscriptLine {
                t_ms: Some(t),
                speaker: Track::Agent,
                text: format!("I think it might be option {i}"),
                is_final: true,
                confidence: Some(*c),
            };
            d.on_transcript(t, &line, &mut out);
        }
        d.handed_off()
    };
    assert!(run(&[0.3, 0.2, 0.4]));
    assert!(!run(&[0.3, 0.2, 0.9, 0.4, 0.3]));
    assert!(!run(&[0.3, 0.2]));
}

#[test]
fn roles_are_configurable_per_signal_and_topic() {
    let fraud = ["There are charges on my card I never made."];
    // Topic as weight only: a fraud mention alone (0.25) does not hand off.
    let mut cfg = DetectorConfig::default();
    cfg.signals
        .insert("topic".into(), SignalRoleConfig { role: Role::Weight });
    assert!(call(&cfg, &fraud).0.is_none());
    // Per topic: fraud flagged only: reported, not scored, no handoff.
    let mut cfg = DetectorConfig::default();
    cfg.topic.roles.insert("fraud".into(), Role::Flag);
    let (h, out) = call(&cfg, &fraud);
    assert!(h.is_none());
    assert!(out.iter().any(|e| matches!(&e.kind,
        EventKind::Signal(s) if s.signal == Signal::Topic)));
    // A human request as `flag`: no handoff either.
    let mut cfg = DetectorConfig::default();
    cfg.signals.insert(
        "human_request".into(),
        SignalRoleConfig { role: Role::Flag },
    );
    assert!(call(&cfg, &["get me a human"]).0.is_none());
    // Config parsing and validation of the names.
    let parsed: DetectorConfig =
        toml::from_str("[signals.loop]\nrole = \"weight\"\n[topic.roles]\ncancel = \"escalate\"\n")
            .unwrap();
    assert_eq!(parsed.role(Signal::Loop), Role::Weight);
    assert_eq!(parsed.topic_role("cancel"), Role::Escalate);
    assert_eq!(parsed.topic_role("fraud"), Role::Escalate);
    let bad: DetectorConfig = toml::from_str("[signals.bogus]\nrole = \"flag\"\n").unwrap();
    assert!(bad.validate().unwrap_err().to_string().contains("bogus"));
}

#[test]
fn an_escalation_says_which_signal_and_why() {
    let (h, _) = call(&DetectorConfig::default(), &["I'm going to sue you"]);
    let h = h.unwrap();
    assert_eq!(h.score, 1.0);
    assert_eq!(h.reasons[0].signal, Signal::Topic);
    assert!(h.summary.why_now.contains("legal"), "{}", h.summary.why_now);
}

#[test]
fn pre_call_rules_hand_off_first_or_lower_the_threshold() {
    use super::playbook::{PreCallAction, PreCallRule, RoutingRule};
    let rule = |action, when: &str| PreCallRule {
        name: None,
        when: vec![when.to_owned()],
        action,
        threshold_scale: 0.6,
    };
    let book = Arc::new(Playbook {
        routing: vec![RoutingRule {
            name: "vip".into(),
            when: vec!["param:tier=vip".into()],
            target: "queue:vip".into(),
            fallback: vec![],
        }],
        pre_call: vec![
            rule(PreCallAction::Handoff, "param:tier=vip"),
            rule(PreCallAction::LowerThresholds, "param:complaint=open"),
        ],
    });
    let cfg = DetectorConfig::default();
    let params = |k: &str, v: &str| BTreeMap::from([(k.to_owned(), v.to_owned())]);
    let mut d = Detector::for_call(
        "CA-vip",
        &cfg,
        model(),
        book.clone(),
        &params("tier", "vip"),
    );
    assert!(d.handed_off());
    let mut out = Vec::new();
    d.finish(0, &mut out);
    let h = out
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::Handoff(h) => Some((e.t_ms, h)),
            _ => None,
        })
        .expect("emitted with the first event");
    assert_eq!(h.0, 0);
    assert!(h.1.pre_call);
    assert_eq!(h.1.reasons[0].signal, Signal::PreCall);
    assert_eq!(h.1.route.as_ref().unwrap().rule, "param:tier=vip");
    assert_eq!(h.1.summary.caller_attributes["tier"], "vip");
    assert!(
        h.1.summary.why_now.contains("param:tier=vip"),
        "{}",
        h.1.summary.why_now
    );

    // A topic and a repeat (0.5) do not reach 0.6, but do reach 0.6 x 0.6.
    let lines = [
        "I want to cancel my subscription",
        "I said I want to cancel",
    ];
    let run = |p: &BTreeMap<String, String>| {
        let mut d = Detector::for_call("CA-lt", &cfg, model(), book.clone(), p);
        let mut out = Vec::new();
        for (i, text) in lines.iter().enumerate() {
            let t = 1000 + i as u64 * GAP_MS;
            let line = TranscriptLine {
                t_ms: Some(t),
                speaker: Track::Caller,
                text: (*text).to_owned(),
                is_final: true,
                confidence: None,
            };
            d.on_transcript(t, &line, &mut out);
        }
        for t in (6000..8000).step_by(10) {
            d.on_scored_frame(
                Track::Caller,
                &Frame {
                    t_ms: t,
                    ..Default::default()
                },
                None,
                0.0,
                &mut out,
            );
        }
        d.handed_off()
    };
    assert!(!run(&params("complaint", "none")));
    assert!(run(&params("complaint", "open")));
}
