//! The session over plain byte strings: every reply it can give, and the
//! defects found probing the old listener, each under its own name.

use super::*;
use crate::ingest::intake::Deferred;
use crate::ingest::Outcome;

fn config() -> Config {
    crate::config::shipped()
}

const RULES: Rules = Rules {
    max_recipients: 3,
    max_errors: 5,
};

const LIST: &str = "a-infos-en@lists.example.org";

/// A client talking to one session; messages are answered by `answer`.
struct Client {
    session: Session,
    messages: Vec<Message>,
    /// Sizes of the oversize messages handed out for the record.
    oversize: Vec<usize>,
    closed: bool,
    answer: Box<dyn Fn(&Message) -> Delivered>,
}

/// Stored as post 1, taken at every service address.
fn accept_all(message: &Message) -> Delivered {
    Delivered {
        post: message
            .post_recipients()
            .next()
            .map(|_| Ok(Outcome::Stored { id: 1 })),
        services: message
            .service_routes()
            .into_iter()
            .map(|route| (route, Ok(())))
            .collect(),
    }
}

impl Client {
    fn new(protocol: Protocol) -> Self {
        Client::with(protocol, config())
    }

    fn with(protocol: Protocol, config: Config) -> Self {
        Client {
            session: Session::new(protocol, Arc::new(config), RULES),
            messages: Vec::new(),
            oversize: Vec::new(),
            closed: false,
            answer: Box::new(accept_all),
        }
    }

    /// A client that has said hello and given a sender.
    fn in_transaction(protocol: Protocol) -> Self {
        let mut client = Client::new(protocol);
        let hello = match protocol {
            Protocol::Lmtp => "LHLO c\r\n",
            Protocol::Smtp => "EHLO c\r\n",
        };
        client.send(hello);
        assert_eq!(
            client.send("MAIL FROM:<a@example.org>\r\n"),
            ["250 2.1.0 sender ok"]
        );
        client
    }

    fn answering(mut self, answer: impl Fn(&Message) -> Delivered + 'static) -> Self {
        self.answer = Box::new(answer);
        self
    }

    /// Sends `input` as one read; the reply lines it brought.
    fn send(&mut self, input: impl AsRef<[u8]>) -> Vec<String> {
        let output = self.session.receive(input.as_ref());
        self.follow(output)
    }

    fn follow(&mut self, mut output: Output) -> Vec<String> {
        let mut replies = Vec::new();
        loop {
            replies.extend(
                String::from_utf8(output.replies)
                    .unwrap()
                    .split_terminator("\r\n")
                    .map(str::to_string),
            );
            match output.next {
                Next::Read => return replies,
                Next::Close => {
                    self.closed = true;
                    return replies;
                }
                Next::Deliver(message) => {
                    let delivered = (self.answer)(&message);
                    self.messages.push(message);
                    output = self.session.delivered(delivered);
                }
                Next::Oversize(size) => {
                    self.oversize.push(size);
                    output = self.session.resume();
                }
            }
        }
    }
}

fn codes(replies: &[String]) -> Vec<&str> {
    replies.iter().map(|reply| &reply[..3]).collect()
}

#[test]
fn the_greeting_is_220_with_the_protocol() {
    let smtp = Client::new(Protocol::Smtp);
    assert_eq!(
        smtp.session.greeting(),
        b"220 lists.example.org tidings ESMTP ready\r\n"
    );
    let lmtp = Client::new(Protocol::Lmtp);
    assert_eq!(
        lmtp.session.greeting(),
        b"220 lists.example.org tidings LMTP ready\r\n"
    );
}

#[test]
fn ehlo_and_lhlo_offer_the_extensions_and_helo_says_hello() {
    for (protocol, hello) in [
        (Protocol::Smtp, "EHLO c\r\n"),
        (Protocol::Lmtp, "LHLO c\r\n"),
    ] {
        let replies = Client::new(protocol).send(hello);
        assert!(
            replies[0].starts_with("250-lists.example.org "),
            "{replies:?}"
        );
        for extension in [
            "PIPELINING",
            "8BITMIME",
            "SMTPUTF8",
            "SIZE 10485760",
            "ENHANCEDSTATUSCODES",
        ] {
            assert!(
                replies.iter().any(|reply| reply[4..] == *extension),
                "{extension}: {replies:?}"
            );
        }
        assert!(replies.last().unwrap().starts_with("250 "), "{replies:?}");
    }
    let replies = Client::new(Protocol::Smtp).send("HELO client.example.org\r\n");
    assert_eq!(replies, ["250 lists.example.org hello client.example.org"]);
}

#[test]
fn the_other_protocols_hello_is_500() {
    assert_eq!(
        Client::new(Protocol::Lmtp).send("EHLO c\r\nHELO c\r\n"),
        [
            "500 5.5.1 this is LMTP: say LHLO",
            "500 5.5.1 this is LMTP: say LHLO"
        ]
    );
    assert_eq!(
        Client::new(Protocol::Smtp).send("LHLO c\r\n"),
        ["500 5.5.1 this is ESMTP: say EHLO or HELO"]
    );
}

#[test]
fn commands_out_of_order_are_503() {
    let mut client = Client::new(Protocol::Smtp);
    assert_eq!(
        client.send("MAIL FROM:<a@example.org>\r\n"),
        ["503 5.5.1 say hello first"]
    );
    client.send("EHLO c\r\n");
    assert_eq!(
        client.send(format!("RCPT TO:<{LIST}>\r\nDATA\r\n")),
        [
            "503 5.5.1 need MAIL before RCPT",
            "503 5.5.1 need MAIL before DATA"
        ]
    );
    client.send("MAIL FROM:<a@example.org>\r\n");
    assert_eq!(
        client.send("MAIL FROM:<b@example.org>\r\n"),
        ["503 5.5.1 sender already given"]
    );
    assert!(!client.closed);
}

#[test]
fn data_without_an_accepted_recipient_is_554() {
    let mut client = Client::in_transaction(Protocol::Smtp);
    client.send("RCPT TO:<nobody@lists.example.org>\r\n");
    assert_eq!(client.send("DATA\r\n"), ["554 5.5.1 no valid recipients"]);
    // The bytes that follow are commands again, not a message.
    assert_eq!(client.send("NOOP\r\n"), ["250 2.0.0 ok"]);
}

#[test]
fn rcpt_accepts_a_list_its_service_addresses_and_postmaster_and_refuses_the_rest_each_with_its_code(
) {
    let cases = [
        (LIST, "250 2.1.5 recipient ok"),
        ("A-Infos-EN+tag@Lists.Example.org", "250 2.1.5 recipient ok"),
        ("postmaster@lists.example.org", "250 2.1.5 recipient ok"),
        ("PostMaster", "250 2.1.5 recipient ok"),
        (
            "nobody@lists.example.org",
            "550 5.1.1 <nobody@lists.example.org>: no such list here",
        ),
        (
            "victim@gmail.com",
            "550 5.7.1 <victim@gmail.com>: relay access denied",
        ),
        ("a@", "550 5.1.3 <a@>: not a mail address"),
        (
            "a-infos-en-request@lists.example.org",
            "250 2.1.5 recipient ok",
        ),
        (
            "a-infos-en-join@lists.example.org",
            "250 2.1.5 recipient ok",
        ),
        (
            "a-infos-en-leave@lists.example.org",
            "250 2.1.5 recipient ok",
        ),
        (
            "a-infos-en-confirm+abc@lists.example.org",
            "250 2.1.5 recipient ok",
        ),
        (
            "a-infos-en-bounces+s=example.net@lists.example.org",
            "250 2.1.5 recipient ok",
        ),
        (
            "a-infos-en-owner@lists.example.org",
            "250 2.1.5 recipient ok",
        ),
    ];
    for (address, expected) in cases {
        let mut client = Client::in_transaction(Protocol::Smtp);
        assert_eq!(
            client.send(format!("RCPT TO:<{address}>\r\n")),
            [expected],
            "{address}"
        );
    }
}

#[test]
fn a_recipient_that_does_not_parse_is_501() {
    let mut client = Client::in_transaction(Protocol::Smtp);
    assert_eq!(
        client.send("RCPT TO:<>\r\nRCPT TO:<nodomain>\r\nRCPT TO: nobrackets@x\r\n"),
        [
            "501 5.1.3 bad recipient address syntax",
            "501 5.1.3 bad recipient address syntax",
            "501 5.5.4 syntax: RCPT TO:<forward-path> [parameters]",
        ]
    );
}

#[test]
fn more_recipients_than_allowed_are_452() {
    let mut client = Client::in_transaction(Protocol::Smtp);
    let four = format!("RCPT TO:<{LIST}>\r\n").repeat(4);
    assert_eq!(
        client.send(four),
        [
            "250 2.1.5 recipient ok",
            "250 2.1.5 recipient ok",
            "250 2.1.5 recipient ok",
            "452 4.5.3 too many recipients",
        ]
    );
}

#[test]
fn mail_parameters_that_are_wrong_are_501_or_555() {
    let mut client = Client::new(Protocol::Smtp);
    client.send("EHLO c\r\n");
    assert_eq!(
        client.send(
            "MAIL FROM:<a@example.org> SIZE=abc\r\nMAIL FROM:<a@example.org> FOO=bar\r\nMAIL FROM:<nodomain>\r\n"
        ),
        [
            "501 5.5.4 invalid parameter SIZE",
            "555 5.5.4 unsupported parameter FOO=BAR",
            "501 5.1.7 bad sender address syntax",
        ]
    );
    // None of them opened a transaction.
    assert_eq!(
        client.send("MAIL FROM:<a@example.org>\r\n"),
        ["250 2.1.0 sender ok"]
    );
}

#[test]
fn a_declared_size_over_the_limit_is_552() {
    let mut client = Client::new(Protocol::Smtp);
    client.send("EHLO c\r\n");
    assert_eq!(
        client.send("MAIL FROM:<a@example.org> SIZE=10485761\r\n"),
        ["552 5.3.4 message size 10485761 exceeds the limit of 10485760 bytes"]
    );
    assert_eq!(
        client.send("MAIL FROM:<a@example.org> SIZE=10485760 BODY=8BITMIME\r\n"),
        ["250 2.1.0 sender ok"]
    );
}

#[test]
fn mail_size_overflow_is_refused() {
    let mut client = Client::new(Protocol::Smtp);
    client.send("EHLO c\r\n");
    // smtp-proto read this one as SIZE=999.
    assert_eq!(
        client.send("MAIL FROM:<a@b.example> SIZE=99999999999999999999999\r\n"),
        ["552 5.3.4 declared message size exceeds the limit of 10485760 bytes"]
    );
    for size in ["18446744073709551616", "184467440737095516150"] {
        let replies = client.send(format!("MAIL FROM:<a@b.example> SIZE={size}\r\n"));
        assert!(
            replies.len() == 1
                && (replies[0].starts_with("552 ") || replies[0].starts_with("501 ")),
            "{size}: {replies:?}"
        );
    }
    assert!(client.session.is_idle(), "no transaction was opened");
}

#[test]
fn unknown_and_unoffered_verbs_are_500_and_502() {
    let mut client = Client::new(Protocol::Smtp);
    assert_eq!(
        client.send("BOGUS\r\nSTARTTLS\r\nAUTH PLAIN AGFiAGM=\r\nEXPN list\r\n"),
        [
            "500 5.5.2 unknown command",
            "502 5.5.1 command not implemented",
            "502 5.5.1 command not implemented",
            "502 5.5.1 command not implemented",
        ]
    );
    assert!(!client.closed);
}

#[test]
fn vrfy_help_noop_rset_and_quit_answer_252_214_250_250_221() {
    let mut client = Client::in_transaction(Protocol::Smtp);
    assert_eq!(
        client.send("VRFY someone\r\nHELP\r\nNOOP\r\nRSET\r\n"),
        [
            "252 2.5.0 cannot verify, send a message and see",
            "214 2.0.0 tidings accepts posts for its lists; see the list's help address",
            "250 2.0.0 ok",
            "250 2.0.0 reset",
        ]
    );
    // RSET dropped the sender but kept the greeting.
    assert!(client.session.is_idle());
    assert_eq!(
        client.send("MAIL FROM:<a@example.org>\r\n"),
        ["250 2.1.0 sender ok"]
    );
    assert_eq!(
        client.send("QUIT\r\nNOOP\r\n"),
        ["221 2.0.0 lists.example.org bye"]
    );
    assert!(client.closed);
}

#[test]
fn too_many_errors_close_the_session_with_421() {
    let mut client = Client::new(Protocol::Smtp);
    let replies = client.send("BOGUS\r\n".repeat(8));
    assert_eq!(
        codes(&replies),
        ["500", "500", "500", "500", "500", "421"],
        "{replies:?}"
    );
    assert_eq!(replies[5], "421 4.7.0 too many errors, closing");
    assert!(client.closed);
    assert!(client.send("NOOP\r\n").is_empty(), "nothing is read after");
}

#[test]
fn a_message_is_delivered_with_its_envelope_and_answered_250() {
    let mut client = Client::in_transaction(Protocol::Smtp);
    assert_eq!(
        client.send(format!("RCPT TO:<{LIST}>\r\nDATA\r\n")),
        [
            "250 2.1.5 recipient ok",
            "354 end data with <CR><LF>.<CR><LF>"
        ]
    );
    assert!(matches!(client.session.deadline(), Deadline::Message(_)));
    assert_eq!(
        client.send("Subject: (en) hi\r\n\r\nbody\r\n.\r\n"),
        ["250 2.0.0 stored as post 1"]
    );
    let message = &client.messages[0];
    assert_eq!(message.sender, "a@example.org");
    assert_eq!(message.protocol, Protocol::Smtp);
    assert_eq!(
        message.recipients,
        [Recipient {
            address: LIST.into(),
            route: Route::Post { list: "en".into() },
        }]
    );
    assert_eq!(
        message.content.as_slice(),
        b"Subject: (en) hi\r\n\r\nbody\r\n"
    );
    // The transaction is over: a new one needs MAIL again.
    assert!(client.session.is_idle());
    assert_eq!(
        client.send(format!("RCPT TO:<{LIST}>\r\n")),
        ["503 5.5.1 need MAIL before RCPT"]
    );
}

#[test]
fn each_outcome_of_a_post_has_its_reply() {
    let cases = [
        (
            Ok(Outcome::Held {
                id: 7,
                reason: "language unknown".into(),
            }),
            "250 2.0.0 held as post 7 for a moderator: language unknown",
        ),
        (
            Ok(Outcome::Duplicate { id: 3 }),
            "250 2.0.0 already stored as post 3",
        ),
        (
            Ok(Outcome::Rejected {
                id: 4,
                reason: "empty message".into(),
            }),
            "550 5.6.0 empty message",
        ),
        (
            Err(Deferred::new("store unavailable: disk I/O error")),
            "451 4.3.0 store unavailable: disk I/O error; try again later",
        ),
        (
            Ok(Outcome::Rejected {
                id: 5,
                reason: "two\r\nlines".into(),
            }),
            "550 5.6.0 two  lines",
        ),
    ];
    for (outcome, expected) in cases {
        let mut client = Client::in_transaction(Protocol::Smtp).answering(move |_| Delivered {
            post: Some(outcome.clone()),
            services: Vec::new(),
        });
        client.send(format!("RCPT TO:<{LIST}>\r\nDATA\r\n"));
        assert_eq!(client.send("x: y\r\n\r\nz\r\n.\r\n"), [expected]);
    }
}

/// A store that cannot take postmaster mail now.
fn postmaster_not_yet(message: &Message) -> Delivered {
    Delivered {
        services: vec![(
            Route::Postmaster,
            Err(Deferred::new("postmaster mail cannot be queued yet")),
        )],
        ..accept_all(message)
    }
}

#[test]
fn lmtp_answers_each_recipient_and_the_answers_may_differ() {
    let mut client = Client::in_transaction(Protocol::Lmtp).answering(postmaster_not_yet);
    client.send(format!(
        "RCPT TO:<{LIST}>\r\nRCPT TO:<postmaster@lists.example.org>\r\nRCPT TO:<a-infos-de@lists.example.org>\r\nDATA\r\n"
    ));
    assert_eq!(
        client.send("x: y\r\n\r\nz\r\n.\r\n"),
        [
            "250 2.0.0 stored as post 1",
            "451 4.3.0 postmaster mail cannot be queued yet; try again later",
            "250 2.0.0 stored as post 1",
        ]
    );
    let routes: Vec<&str> = client.messages[0]
        .recipients
        .iter()
        .map(|recipient| recipient.route.kind())
        .collect();
    assert_eq!(routes, ["posting", "postmaster", "posting"]);
}

#[test]
fn smtp_answers_once_and_a_temporary_failure_wins() {
    let mut client = Client::in_transaction(Protocol::Smtp).answering(postmaster_not_yet);
    client.send(format!(
        "RCPT TO:<{LIST}>\r\nRCPT TO:<postmaster>\r\nDATA\r\n"
    ));
    assert_eq!(
        client.send("x: y\r\n\r\nz\r\n.\r\n"),
        ["451 4.3.0 postmaster mail cannot be queued yet; try again later"]
    );
    let mut client = Client::in_transaction(Protocol::Smtp);
    client.send("RCPT TO:<postmaster>\r\nDATA\r\n");
    assert_eq!(
        client.send("x: y\r\n\r\nz\r\n.\r\n"),
        ["250 2.0.0 queued for the postmaster"]
    );
}

#[test]
fn data_starts_at_a_line_start_so_a_lone_dot_ends_an_empty_message() {
    let mut client = Client::in_transaction(Protocol::Smtp);
    client.send(format!("RCPT TO:<{LIST}>\r\n"));
    assert_eq!(
        client.send("DATA\r\n.\r\n"),
        [
            "354 end data with <CR><LF>.<CR><LF>",
            "250 2.0.0 stored as post 1"
        ]
    );
    assert_eq!(client.messages.len(), 1);
    assert!(client.messages[0].content.is_empty());
    // Also when the dot comes in a read of its own.
    client.send(format!(
        "MAIL FROM:<a@example.org>\r\nRCPT TO:<{LIST}>\r\nDATA\r\n"
    ));
    assert_eq!(client.send(".\r\n"), ["250 2.0.0 stored as post 1"]);
    assert!(client.messages[1].content.is_empty());
}

#[test]
fn data_starts_at_a_line_start_so_a_stuffed_first_line_is_unstuffed() {
    let mut client = Client::in_transaction(Protocol::Smtp);
    client.send(format!("RCPT TO:<{LIST}>\r\n"));
    client.send("DATA\r\n..X\r\n..\r\n.\r\n");
    assert_eq!(client.messages[0].content.as_slice(), b".X\r\n.\r\n");
}

#[test]
fn a_dot_after_a_bare_lf_does_not_end_the_message() {
    // SMTP smuggling: only CRLF.CRLF ends DATA.
    let mut client = Client::in_transaction(Protocol::Smtp);
    client.send(format!("RCPT TO:<{LIST}>\r\nDATA\r\n"));
    assert!(client
        .send("a\n.\r\nMAIL FROM:<x@y.example>\r\n")
        .is_empty());
    assert_eq!(client.send("\r\n.\r\n"), ["250 2.0.0 stored as post 1"]);
    assert_eq!(
        client.messages[0].content.as_slice(),
        b"a\n.\r\nMAIL FROM:<x@y.example>\r\n\r\n"
    );
}

#[test]
fn a_message_over_the_limit_is_discarded_while_counting_and_is_552() {
    let mut config = config();
    config.ingest.max_message_bytes = 1000;
    for protocol in [Protocol::Smtp, Protocol::Lmtp] {
        let mut client = Client::with(protocol, config.clone());
        client.send(match protocol {
            Protocol::Lmtp => "LHLO c\r\n",
            Protocol::Smtp => "EHLO c\r\n",
        });
        client.send(format!(
            "MAIL FROM:<a@example.org>\r\nRCPT TO:<{LIST}>\r\nRCPT TO:<postmaster>\r\nDATA\r\n"
        ));
        let line = format!("{}\r\n", "x".repeat(98));
        for _ in 0..20_000 {
            assert!(client.send(&line).is_empty());
            if let State::Data(incoming) = &client.session.state {
                assert!(incoming.kept() <= 1000 + 100, "kept {}", incoming.kept());
            }
        }
        // A command pipelined after the message is answered after it.
        let replies = client.send(".\r\nNOOP\r\n");
        let expected = "552 5.3.4 message is 2000003 bytes, over the limit of 1000 bytes";
        match protocol {
            Protocol::Smtp => assert_eq!(replies, [expected, "250 2.0.0 ok"]),
            Protocol::Lmtp => assert_eq!(replies, [expected, expected, "250 2.0.0 ok"]),
        }
        assert!(client.messages.is_empty(), "nothing goes to the intake");
        assert_eq!(client.oversize, [2_000_003], "the refusal is recorded");
        assert!(client.session.is_idle());
    }
}

#[test]
fn an_overlong_command_line_gets_one_500_and_is_discarded_to_its_end() {
    // Past 4 KB the line looks like a RCPT; none may run as one.
    let filler = format!("{}RCPT TO:<{LIST}>", "x".repeat(4000));
    let line = format!("NOOP {}\r\nNOOP\r\n", filler.repeat(25));
    for chunk in [line.len(), 1000, 7] {
        let mut client = Client::in_transaction(Protocol::Smtp);
        let mut replies = Vec::new();
        for piece in line.as_bytes().chunks(chunk) {
            replies.extend(client.send(piece));
        }
        assert_eq!(
            replies,
            ["500 5.5.2 line too long", "250 2.0.0 ok"],
            "in reads of {chunk}"
        );
        assert_eq!(
            client.send("DATA\r\n"),
            ["554 5.5.1 no valid recipients"],
            "no recipient was taken from the long line"
        );
    }
}

#[test]
fn a_command_line_at_the_limit_is_still_a_command() {
    let mut client = Client::new(Protocol::Smtp);
    let noop = format!("NOOP {}\r\n", "x".repeat(MAX_COMMAND_LINE - 7));
    assert_eq!(noop.len(), MAX_COMMAND_LINE);
    assert_eq!(client.send(&noop), ["250 2.0.0 ok"]);
    let noop = format!("NOOP {}\r\n", "x".repeat(MAX_COMMAND_LINE - 6));
    assert_eq!(client.send(&noop), ["500 5.5.2 line too long"]);
}

#[test]
fn pipelined_commands_after_a_message_are_answered_after_it_in_order() {
    let mut client = Client::in_transaction(Protocol::Lmtp);
    let replies = client.send(format!(
        "RCPT TO:<{LIST}>\r\nDATA\r\na: b\r\n\r\none\r\n.\r\n\
         MAIL FROM:<c@example.org>\r\nRCPT TO:<{LIST}>\r\nDATA\r\na: b\r\n\r\ntwo\r\n.\r\nNOOP\r\n"
    ));
    assert_eq!(
        codes(&replies),
        ["250", "354", "250", "250", "250", "354", "250", "250"],
        "{replies:?}"
    );
    assert_eq!(client.messages.len(), 2);
    assert_eq!(client.messages[1].sender, "c@example.org");
    assert_eq!(
        client.messages[1].content.as_slice(),
        b"a: b\r\n\r\ntwo\r\n"
    );
}

#[test]
fn the_deadline_changes_with_each_command_and_message_not_with_each_read() {
    let mut client = Client::new(Protocol::Smtp);
    let first = client.session.deadline();
    assert!(matches!(first, Deadline::Command(_)));
    client.send("EH");
    client.send("LO");
    assert_eq!(client.session.deadline(), first, "one command, three reads");
    client.send(" c\r\n");
    let second = client.session.deadline();
    assert_ne!(second, first);
    client.send(format!(
        "MAIL FROM:<a@example.org>\r\nRCPT TO:<{LIST}>\r\nDATA\r\n"
    ));
    let data = client.session.deadline();
    assert!(matches!(data, Deadline::Message(_)));
    client.send("a: b\r\n");
    client.send("\r\nbody\r\n");
    assert_eq!(
        client.session.deadline(),
        data,
        "one message, several reads"
    );
    client.send(".\r\n");
    assert!(matches!(client.session.deadline(), Deadline::Command(_)));
    // An overlong line is one command however it is read.
    let long = client.session.deadline();
    client.send("x".repeat(MAX_COMMAND_LINE + 1));
    client.send("x".repeat(100));
    assert_eq!(client.session.deadline(), long);
    client.send("\r\n");
    assert_ne!(client.session.deadline(), long);
}

#[test]
fn timeouts_and_shutdown_are_421() {
    let mut client = Client::new(Protocol::Smtp);
    assert_eq!(
        client.session.timed_out(),
        b"421 4.4.2 lists.example.org command timeout\r\n"
    );
    assert!(client.send("NOOP\r\n").is_empty() && client.closed);

    let mut client = Client::in_transaction(Protocol::Smtp);
    client.send(format!("RCPT TO:<{LIST}>\r\nDATA\r\nsome"));
    assert_eq!(
        client.session.timed_out(),
        b"421 4.4.2 lists.example.org data timeout\r\n"
    );

    let mut client = Client::new(Protocol::Lmtp);
    assert!(client.session.is_idle());
    assert_eq!(
        client.session.shut_down(),
        b"421 4.3.2 lists.example.org shutting down\r\n"
    );
    assert!(client.send("LHLO c\r\n").is_empty() && client.closed);
}

#[test]
fn a_session_is_idle_only_outside_a_transaction() {
    let mut client = Client::new(Protocol::Smtp);
    assert!(client.session.is_idle());
    client.send("EHLO c\r\nMAIL FROM:<a@example.org>\r\n");
    assert!(!client.session.is_idle());
    client.send(format!("RCPT TO:<{LIST}>\r\nDATA\r\n"));
    assert!(!client.session.is_idle());
    client.send("x: y\r\n\r\nz\r\n.\r\n");
    assert!(client.session.is_idle());
}

#[test]
fn too_many_connections_is_421() {
    assert_eq!(
        too_many_connections("lists.example.org"),
        b"421 4.7.0 lists.example.org too many connections, try again later\r\n"
    );
}

/// One message through `client`, after whatever `before` says before MAIL.
fn send_one(client: &mut Client, before: &str) -> Vec<String> {
    client.send(format!(
        "{before}MAIL FROM:<a@example.org>\r\nRCPT TO:<{LIST}>\r\nDATA\r\nSubject: x\r\n\r\nbody\r\n.\r\n"
    ))
}

#[test]
fn a_loopback_peer_names_the_client_by_xforward_and_no_other_peer_may() {
    for (protocol, hello) in [
        (Protocol::Lmtp, "LHLO postfix.example.org\r\n"),
        (Protocol::Smtp, "EHLO postfix.example.org\r\n"),
    ] {
        let mut client = Client::new(protocol);
        client.session.set_peer("127.0.0.1".parse().unwrap());
        let replies = client.send(hello);
        assert!(
            replies.contains(&"250-XFORWARD NAME ADDR PROTO HELO".to_string()),
            "{replies:?}"
        );
        assert!(replies.last().unwrap().starts_with("250 "), "{replies:?}");
        let replies = send_one(
            &mut client,
            "XFORWARD NAME=mx.example.net ADDR=IPV6:2001:db8::7 PROTO=ESMTP\r\nXFORWARD HELO=mx+2Eexample.net\r\n",
        );
        assert_eq!(&codes(&replies)[..2], ["250", "250"], "{replies:?}");
        let message = &client.messages[0];
        assert_eq!(message.client, "2001:db8::7".parse().ok());
        assert_eq!(message.helo, "mx.example.net");
        // The next transaction is the peer's own again.
        send_one(&mut client, "");
        assert_eq!(client.messages[1].client, "127.0.0.1".parse().ok());
        assert_eq!(client.messages[1].helo, "postfix.example.org");
        // Unknown is unknown, not the peer.
        send_one(
            &mut client,
            "XFORWARD ADDR=[UNAVAILABLE] HELO=[TEMPUNAVAIL]\r\n",
        );
        assert_eq!(client.messages[2].client, None);
        assert_eq!(client.messages[2].helo, "");
        // Not inside a transaction, and only the attributes offered.
        let replies = client.send(
            "MAIL FROM:<a@example.org>\r\nXFORWARD ADDR=192.0.2.1\r\nRSET\r\nXFORWARD USER=x\r\n",
        );
        assert_eq!(codes(&replies), ["250", "503", "250", "501"], "{replies:?}");
    }

    let mut stranger = Client::new(Protocol::Smtp);
    stranger.session.set_peer("192.0.2.9".parse().unwrap());
    let replies = stranger.send("EHLO c\r\n");
    assert!(
        !replies.iter().any(|reply| reply.contains("XFORWARD")),
        "{replies:?}"
    );
    let replies = send_one(&mut stranger, "XFORWARD ADDR=198.51.100.1\r\n");
    assert_eq!(
        replies[0],
        "550 5.7.0 XFORWARD is not permitted from this client"
    );
    assert_eq!(stranger.messages[0].client, "192.0.2.9".parse().ok());
    assert_eq!(stranger.messages[0].helo, "c");
}
