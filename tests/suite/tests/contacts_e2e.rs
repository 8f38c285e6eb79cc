//! Contact sync end to end: the LN simulator, the Exchange simulator, the real runner, LN
//! client, Exchange client and SQLite store. Each test states the outcome a user or an
//! administrator sees (spec `scenarios.md` 1, 4, 7, 9, 15, 29, 30 and `behaviour.md` R4,
//! R8–R14, R30, R34–R38), and runs once on EWS and once on Microsoft Graph (`name::ews`,
//! `name::graph`): costs are asserted in backend-neutral terms ([`Op`], batches of
//! `Backend::max_batch`). The harness checks every request of every run: EWS bodies against
//! Microsoft's schemas, Graph requests for their `Prefer` headers.

use ews_sim::{Item, StoredItem};
use ln_sim::model::Contact as LnContact;
use lnsync_core::ids::{EnvironmentId, UserId};
use lnsync_core::model::{ProblemKind, RunOutcome};
use lnsync_core::ports::{StateStore, SystemClock};
use lnsync_core::testing::CrashingStore;
use lnsync_runtime::runner::{EnvironmentStatus, run_contacts};
use lnsync_tests::both_backends;
use lnsync_tests::harness::{
    Backend, KillingConnector, OffsetClock, Op, TestResult, World, contact_code, dead_address,
    describe, env_report, live_connector, qualifying_contacts, stamp_of, tag_property, user_report,
};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const TITLE_TAG: u16 = 0x3A45;
const LANGUAGE_TAG: u16 = 0x3A0C;

fn codes(contacts: &[LnContact]) -> Vec<String> {
    contacts.iter().map(|c| c.contact.clone()).collect()
}

fn codes_except(contacts: &[LnContact], gone: &[&str]) -> Vec<String> {
    contacts
        .iter()
        .map(|c| c.contact.clone())
        .filter(|c| !gone.contains(&c.as_str()))
        .collect()
}

/// What R13 says the Exchange contact must hold for this LN contact.
fn assert_mapped(item: &StoredItem, c: &LnContact) {
    let code = &c.contact;
    let ct = item.item.as_contact().expect("a contact item");
    assert_eq!(ct.given_name, c.first_name, "{code} given name");
    assert_eq!(ct.middle_name, c.middle_name, "{code} middle name");
    assert_eq!(ct.surname, c.last_name, "{code} surname");
    assert_eq!(ct.display_name, c.full_name, "{code} display name");
    if let (Some(last), Some(first)) = (&c.last_name, &c.first_name) {
        assert_eq!(
            ct.file_as,
            Some(format!("{last}, {first}")),
            "{code} file-as"
        );
    }
    assert_eq!(ct.initials, c.initials, "{code} initials");
    assert_eq!(ct.generation, c.suffix, "{code} suffix");
    assert_eq!(ct.job_title, c.job_title, "{code} job title");
    assert_eq!(ct.department, c.department, "{code} department");
    assert_eq!(ct.company_name, c.business_partner_name, "{code} company");
    assert_eq!(ct.assistant_name, c.assistant, "{code} assistant");
    match (&ct.birthday, &c.birthday) {
        (Some(b), Some(d)) => assert!(
            b.starts_with(&d.format("%Y-%m-%d").to_string()),
            "{code} birthday {b} vs {d}"
        ),
        (None, None) => {}
        (b, d) => panic!("{code} birthday: Exchange {b:?}, LN {d:?}"),
    }
    assert_eq!(
        ct.email_addresses.get("EmailAddress1"),
        c.email.as_ref(),
        "{code} e-mail"
    );
    assert_eq!(
        ct.phone_numbers.get("BusinessPhone"),
        c.primary_phone.as_ref(),
        "{code} phone"
    );
    assert_eq!(
        ct.phone_numbers.get("MobilePhone"),
        c.mobile_phone.as_ref(),
        "{code} mobile"
    );
    assert_eq!(
        ct.phone_numbers.get("BusinessFax"),
        c.fax.as_ref(),
        "{code} fax"
    );
    let a = &c.address;
    let street: Vec<&str> = [&a.line1, &a.line2, &a.line3]
        .into_iter()
        .flatten()
        .map(String::as_str)
        .collect();
    let business = ct
        .physical_addresses
        .get("Business")
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        business.street,
        (!street.is_empty()).then(|| street.join("\n")),
        "{code} street"
    );
    assert_eq!(business.city, a.city, "{code} city");
    assert_eq!(business.postal_code, a.zip, "{code} zip");
    assert_eq!(business.state, a.state, "{code} state");
    assert_eq!(
        business.country_or_region, a.country,
        "{code} country ISO code"
    );
    assert_eq!(
        tag_property(item, TITLE_TAG),
        c.title,
        "{code} title (PidTagDisplayNamePrefix)"
    );
    assert_eq!(
        tag_property(item, LANGUAGE_TAG),
        c.language,
        "{code} language (PidTagLanguage)"
    );
}

/// ChangeKeys of the CRM folder by stamp.
fn change_keys(world: &World, mailbox: &str) -> BTreeMap<String, String> {
    world
        .crm_items(mailbox)
        .into_iter()
        .filter_map(|i| stamp_of(&i).map(|s| (s, i.change_key.0)))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Scenario 1: initial load
// ---------------------------------------------------------------------------------------------

both_backends!(
    scenario_1_first_run_puts_500_contacts_in_crm_contacts_once_each,
    multi_thread
);
async fn scenario_1_first_run_puts_500_contacts_in_crm_contacts_once_each(
    backend: Backend,
) -> TestResult {
    let contacts = qualifying_contacts(500);
    let world = World::single_on(backend, 1, contacts.clone()).await?;
    let mb = world.mailbox(0, 0).to_owned();

    let report = world.run().await?;

    let alice = user_report(&report, "prod", "alice");
    assert_eq!(alice.outcome, RunOutcome::Succeeded, "{}", report.render());
    assert_eq!(alice.counts.created, 500);
    assert_eq!(
        (
            alice.counts.updated,
            alice.counts.deleted,
            alice.counts.errors
        ),
        (0, 0, 0)
    );
    // Each contact exactly once, stamped ln:prod:contact:<code>, linked to that very item.
    world.assert_in_sync("prod", 0, &codes(&contacts)).await?;
    assert_eq!(
        world.crm_items(&mb).len(),
        500,
        "nothing but the 500 contacts"
    );
    // Never in the user's own Contacts folder (R9).
    let own = world
        .ews
        .folder_id(&mb, ews_sim::DistinguishedFolder::Contacts)?;
    assert!(world.ews.items_in_folder(&mb, &own)?.is_empty());
    // Cost: the folder created once, the 500 contacts in full batches (EWS: 5 CreateItem of
    // 100; Graph: 25 `$batch`es of 20), nothing else written.
    let batches = backend.batches(500);
    let create_requests = world.requests_doing(&mb, Op::Create);
    assert!(
        create_requests <= 25,
        "500 contacts cost at most 25 write requests, not {create_requests}"
    );
    let requests = world.exchange_requests_for(&mb);
    assert_eq!(world.requests_doing(&mb, Op::FolderCreate), 1);
    assert_eq!(
        world.batch_sizes(&mb, Op::Create),
        vec![backend.max_batch(); batches],
        "{}",
        describe(&requests)
    );
    assert_eq!(world.writes_for(&mb), 1 + batches);
    // And no read beyond finding the folder: a folder this run created needs no stamp lookup.
    assert_eq!(
        world.ops_for(&mb),
        BTreeMap::from([
            (Op::FolderLookup, 1),
            (Op::FolderCreate, 1),
            (Op::Create, batches)
        ]),
        "folder lookup + folder creation + the creates:\n{}",
        describe(&requests)
    );
    // Graph signs in once per run (the token is cached); EWS authenticates each request.
    assert_eq!(
        world.token_calls(),
        usize::from(backend == Backend::Graph),
        "{}",
        describe(&world.exchange_requests())
    );
    println!(
        "{backend}: 500 new contacts cost {} HTTP requests ({} writes, {} token)",
        world.exchange_requests().len(),
        world.writes_for(&mb),
        world.token_calls()
    );
    // Field mapping (R13), on every contact: full and sparse ones, with and without title.
    for c in &contacts {
        let item = world.crm_item(&mb, "prod", &c.contact).expect("synced");
        assert_mapped(&item, c);
    }
    assert!(
        contacts.iter().any(|c| c.title.is_some()) && contacts.iter().any(|c| c.title.is_none())
    );

    // LN: the change feed is one Contacts read (plus its pages) and one DeletedObjects read.
    let feed = world.ln_gets("100", "Contacts");
    let first_pages = feed
        .iter()
        .filter(|r| !r.decoded_query().contains("$skiptoken"))
        .count();
    assert_eq!(
        first_pages,
        1,
        "one Contacts query: {:?}",
        feed.iter().map(|r| r.decoded_query()).collect::<Vec<_>>()
    );
    assert!(
        (1..=3).contains(&feed.len()),
        "500 rows in at most 3 pages, got {}",
        feed.len()
    );
    assert_eq!(world.ln_gets("100", "DeletedObjects").len(), 1);
    assert_eq!(
        world.ln_writes(),
        0,
        "contacts are one way: LN is never written"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Scenario 7 / R14: the idle run
// ---------------------------------------------------------------------------------------------

both_backends!(
    scenario_7_idle_run_costs_two_ln_reads_per_environment_and_no_exchange_call,
    multi_thread
);
async fn scenario_7_idle_run_costs_two_ln_reads_per_environment_and_no_exchange_call(
    backend: Backend,
) -> TestResult {
    let world = World::builder()
        .backend(backend)
        .env("prod", "100", 3, qualifying_contacts(30))
        .env("test", "200", 2, qualifying_contacts(10))
        .start()
        .await?;

    let first = world.run().await?;
    assert!(!first.has_failures(), "{}", first.render());
    for (env, company, users, n) in [("prod", "100", 3, 30), ("test", "200", 2, 10)] {
        for u in 0..users {
            let login = world.env(env).users[u].user.clone();
            assert_eq!(
                user_report(&first, env, &login).counts.created,
                n,
                "{env}/{login}"
            );
        }
        // R14: the feed is read once per environment, however many users it has.
        let heads = |set| {
            world
                .ln_gets(company, set)
                .iter()
                .filter(|r| !r.decoded_query().contains("$skiptoken"))
                .count()
        };
        assert_eq!(
            heads("Contacts"),
            1,
            "{env}: Contacts read once for {users} users"
        );
        assert_eq!(
            heads("DeletedObjects"),
            1,
            "{env}: DeletedObjects read once for {users} users"
        );
    }

    let second = world.run().await?;
    assert!(!second.has_failures(), "{}", second.render());
    for env in ["prod", "test"] {
        for u in &world.env(env).users {
            let r = user_report(&second, env, &u.user);
            assert_eq!(r.outcome, RunOutcome::Succeeded);
            assert_eq!(r.counts.writes(), 0, "{env}/{}: {:?}", u.user, r.counts);
        }
    }
    assert!(
        world.exchange_requests().is_empty(),
        "an idle contact run makes no Exchange request at all (not even a token):\n{}",
        describe(&world.exchange_requests())
    );
    for company in ["100", "200"] {
        let contacts = world.ln_gets(company, "Contacts");
        assert_eq!(contacts.len(), 1, "company {company}: one Contacts read");
        assert!(
            contacts[0].decoded_query().contains("lastModified ge "),
            "the read is incremental: {}",
            contacts[0].decoded_query()
        );
        assert_eq!(
            world.ln_gets(company, "DeletedObjects").len(),
            1,
            "company {company}: one DeletedObjects read"
        );
        // The configuration reads are separate: settings and users, once per environment.
        assert_eq!(
            world.ln_gets(company, "Settings").len(),
            1,
            "company {company}: Settings"
        );
        assert_eq!(
            world.ln_gets(company, "SyncUsers").len(),
            1,
            "company {company}: SyncUsers"
        );
        let data = world.ln.count(|r| {
            r.kind == ln_sim::RequestKind::Data && r.company.as_deref() == Some(company)
        });
        assert_eq!(
            data, 4,
            "company {company}: nothing but feed + configuration reads"
        );
    }
    assert_eq!(
        world.ln.count_token_calls(),
        0,
        "the LN token of the first run is still valid and reused"
    );
    assert_eq!(world.ln_writes(), 0);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// R8: LN changes reach every user
// ---------------------------------------------------------------------------------------------

both_backends!(
    r8_contacts_edited_in_ln_are_updated_in_every_mailbox_and_nothing_else,
    multi_thread
);
async fn r8_contacts_edited_in_ln_are_updated_in_every_mailbox_and_nothing_else(
    backend: Backend,
) -> TestResult {
    let contacts = qualifying_contacts(40);
    let world = World::single_on(backend, 2, contacts.clone()).await?;
    assert!(!world.run().await?.has_failures());
    let before: Vec<BTreeMap<String, String>> = (0..2)
        .map(|u| change_keys(&world, world.mailbox(0, u)))
        .collect();

    let edited = [contact_code(1), contact_code(9), contact_code(20)];
    world.ln_patch(
        "100",
        &edited[0],
        json!({"jobTitle": "Chief Procurement Officer"}),
    )?;
    world.ln_patch(
        "100",
        &edited[1],
        json!({"lastName": "Renamed", "fullName": "Renamed Person"}),
    )?;
    world.ln_patch(
        "100",
        &edited[2],
        json!({"primaryPhone": "+46 31 555 00 00", "mobilePhone": null}),
    )?;

    let report = world.run().await?;
    for (u, before) in before.iter().enumerate() {
        let (login, mb) = (world.user(0, u), world.mailbox(0, u));
        let r = user_report(&report, "prod", login);
        assert_eq!(r.outcome, RunOutcome::Succeeded, "{}", report.render());
        assert_eq!(
            (r.counts.updated, r.counts.created, r.counts.deleted),
            (3, 0, 0),
            "{login}"
        );
        assert_eq!(
            world.requests_doing(mb, Op::Update),
            1,
            "{login}: one batched update"
        );
        assert_eq!(
            world.items_doing(mb, Op::Update),
            3,
            "{login}: exactly the 3 edited contacts"
        );
        assert_eq!(world.writes_for(mb), 1, "{login}: no create or delete");
        for code in &edited {
            let item = world.crm_item(mb, "prod", code).expect("still there");
            assert_mapped(&item, &world.ln_contact("100", code)?);
        }
        let ct = world.crm_item(mb, "prod", &edited[2]).expect("synced");
        assert!(
            ct.item
                .as_contact()
                .is_some_and(|c| !c.phone_numbers.contains_key("MobilePhone")),
            "a field LN cleared is cleared"
        );
        // The 37 others were not touched.
        let after = change_keys(&world, mb);
        let untouched = before
            .iter()
            .filter(|(s, ck)| after.get(*s) == Some(*ck))
            .count();
        assert_eq!(untouched, 37, "{login}");
        world.assert_in_sync("prod", u, &codes(&contacts)).await?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Scenario 4 / R34: interrupted first run
// ---------------------------------------------------------------------------------------------

both_backends!(
    scenario_4_run_killed_after_three_create_batches_of_800_converges_without_duplicates,
    multi_thread
);
async fn scenario_4_run_killed_after_three_create_batches_of_800_converges_without_duplicates(
    backend: Backend,
) -> TestResult {
    let contacts = qualifying_contacts(800);
    let world = World::single_on(backend, 1, contacts.clone()).await?;
    let mb = world.mailbox(0, 0).to_owned();

    // The process dies right after Exchange accepted the 3rd create batch (EWS: 300 contacts,
    // Graph: 60): the run's future is dropped there, as a kill would, before lnsync saw the
    // answer.
    let before_kill = 3 * backend.max_batch();
    let rest = 800 - before_kill;
    let reached = Arc::new(tokio::sync::Notify::new());
    let killer = KillingConnector {
        live: live_connector(),
        kill_at: 3,
        reached: reached.clone(),
    };
    world.clear_logs();
    tokio::select! {
        () = reached.notified() => {}
        report = run_contacts(&world.config, world.store.as_ref(), &SystemClock, &killer) => {
            panic!("the run should have been killed mid-way:\n{}", report.render());
        }
    }
    world.check_exchange_requests()?;
    assert_eq!(world.requests_doing(&mb, Op::Create), 3);
    assert_eq!(
        world.crm_items(&mb).len(),
        before_kill,
        "{before_kill} of 800 were created before the kill"
    );

    // Restarted at once, the dead run's lease still holds the user (R36): nothing happens.
    let report = world.run().await?;
    assert_eq!(
        user_report(&report, "prod", "alice").outcome,
        RunOutcome::Busy,
        "{}",
        report.render()
    );
    assert!(world.exchange_requests().is_empty());

    // Restarted after the lease expired: the rest are created, the ones before the kill are
    // adopted.
    let later = OffsetClock(
        chrono::Duration::from_std(world.config.sync.lease_ttl)? + chrono::Duration::minutes(1),
    );
    let report = world
        .run_with(world.store.as_ref(), &later, &world.connector)
        .await?;
    let alice = user_report(&report, "prod", "alice");
    assert_eq!(alice.outcome, RunOutcome::Succeeded, "{}", report.render());
    assert_eq!(alice.counts.created, rest as u32);
    assert_eq!(world.requests_doing(&mb, Op::Create), backend.batches(rest));
    world.assert_in_sync("prod", 0, &codes(&contacts)).await?;
    assert_eq!(world.crm_items(&mb).len(), 800);
    for c in contacts.iter().step_by(97) {
        assert_mapped(&world.crm_item(&mb, "prod", &c.contact).expect("synced"), c);
    }

    // And the run after that is idle.
    let report = world
        .run_with(world.store.as_ref(), &later, &world.connector)
        .await?;
    assert_eq!(user_report(&report, "prod", "alice").counts.writes(), 0);
    assert!(world.exchange_requests().is_empty());
    Ok(())
}

both_backends!(
    r34_link_write_lost_after_create_is_adopted_by_the_next_run,
    multi_thread
);
async fn r34_link_write_lost_after_create_is_adopted_by_the_next_run(
    backend: Backend,
) -> TestResult {
    let contacts = qualifying_contacts(800);
    let world = World::single_on(backend, 1, contacts.clone()).await?;
    let mb = world.mailbox(0, 0).to_owned();

    // The store fails when saving the links of the 3rd batch Exchange created.
    let failing = CrashingStore::new((*world.store).clone());
    failing.crash_on_put_links(3, true);
    let report = world
        .run_with(&failing, &SystemClock, &world.connector)
        .await?;
    let alice = user_report(&report, "prod", "alice");
    assert_eq!(failing.crashes(), 1, "the fault fired");
    assert_eq!(alice.outcome, RunOutcome::Failed, "{}", report.render());
    assert!(report.has_failures());
    let before_crash = 3 * backend.max_batch();
    assert_eq!(world.crm_items(&mb).len(), before_crash);

    let report = world.run().await?;
    let alice = user_report(&report, "prod", "alice");
    assert_eq!(alice.outcome, RunOutcome::Succeeded, "{}", report.render());
    let rest = 800 - before_crash;
    assert_eq!(
        alice.counts.created, rest as u32,
        "only the missing {rest} are created"
    );
    assert_eq!(world.requests_doing(&mb, Op::Create), backend.batches(rest));
    world.assert_in_sync("prod", 0, &codes(&contacts)).await?;
    assert_eq!(world.crm_items(&mb).len(), 800);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Scenario 9 / R12: LN wins, at LN's next change
// ---------------------------------------------------------------------------------------------

both_backends!(
    scenario_9_outlook_edits_are_overwritten_at_the_next_ln_change_and_ln_is_never_written,
    multi_thread
);
async fn scenario_9_outlook_edits_are_overwritten_at_the_next_ln_change_and_ln_is_never_written(
    backend: Backend,
) -> TestResult {
    let contacts = qualifying_contacts(20);
    let world = World::single_on(backend, 1, contacts.clone()).await?;
    let mb = world.mailbox(0, 0).to_owned();
    assert!(!world.run().await?.has_failures());

    // The user edits a synced contact in Outlook.
    let code = contact_code(2);
    let item = world.crm_item(&mb, "prod", &code).expect("synced");
    let edited_ck = world.ews.user_update_item(&mb, &item.id, |i| {
        if let Some(c) = i.as_contact_mut() {
            c.surname = Some("Edited In Outlook".into());
            c.job_title = Some("Self-appointed".into());
        }
    })?;
    assert_ne!(edited_ck, item.change_key, "the ChangeKey moved");

    // No LN change: the edit is left alone and Exchange is not even asked.
    let report = world.run().await?;
    assert_eq!(user_report(&report, "prod", "alice").counts.writes(), 0);
    assert!(world.exchange_requests().is_empty());
    let now = world.crm_item(&mb, "prod", &code).expect("still there");
    assert_eq!(now.change_key, edited_ck);

    // LN changes that contact: LN's values come back, the Outlook edit is gone.
    world.ln_patch("100", &code, json!({"department": "Strategic Sourcing"}))?;
    let report = world.run().await?;
    let alice = user_report(&report, "prod", "alice");
    assert_eq!(alice.outcome, RunOutcome::Succeeded, "{}", report.render());
    assert_eq!((alice.counts.updated, alice.counts.created), (1, 0));
    let restored = world
        .crm_item(&mb, "prod", &code)
        .expect("still there, once");
    let ln_now = world.ln_contact("100", &code)?;
    assert_mapped(&restored, &ln_now);
    assert_eq!(
        restored
            .item
            .as_contact()
            .and_then(|c| c.department.clone())
            .as_deref(),
        Some("Strategic Sourcing")
    );
    assert_eq!(restored.id, item.id, "overwritten in place, not recreated");
    assert_eq!(world.ln_writes(), 0, "one way: LN is not written");

    // The user deletes another synced contact in Outlook: nothing happens until LN changes it…
    let code = contact_code(3);
    let item = world.crm_item(&mb, "prod", &code).expect("synced");
    world.ews.user_delete_item(&mb, &item.id)?;
    let report = world.run().await?;
    assert_eq!(user_report(&report, "prod", "alice").counts.writes(), 0);
    assert!(world.crm_item(&mb, "prod", &code).is_none());
    // …then it is created again, exactly once.
    world.ln_patch("100", &code, json!({"jobTitle": "Head of Quality"}))?;
    let report = world.run().await?;
    let alice = user_report(&report, "prod", "alice");
    assert_eq!(alice.outcome, RunOutcome::Succeeded, "{}", report.render());
    let back = world.crm_item(&mb, "prod", &code).expect("recreated");
    assert_ne!(back.id, item.id);
    assert_mapped(&back, &world.ln_contact("100", &code)?);
    world.assert_in_sync("prod", 0, &codes(&contacts)).await?;
    assert_eq!(world.ln_writes(), 0);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Scenario 29 / R38: an expired folder cursor in repair mode
// ---------------------------------------------------------------------------------------------

both_backends!(
    scenario_29_repair_mode_rereads_the_folder_in_full_after_an_expired_cursor,
    multi_thread
);
async fn scenario_29_repair_mode_rereads_the_folder_in_full_after_an_expired_cursor(
    backend: Backend,
) -> TestResult {
    let contacts = qualifying_contacts(20);
    let world = World::builder()
        .backend(backend)
        .sync_option("repair = true")
        .env("prod", "100", 1, contacts.clone())
        .start()
        .await?;
    let mb = world.mailbox(0, 0).to_owned();
    assert!(!world.run().await?.has_failures());
    // Repair mode reads the folder's changes on every run: idle, that is one delta call.
    let report = world.run().await?;
    assert_eq!(user_report(&report, "prod", "alice").counts.writes(), 0);
    assert_eq!(
        world.delta_calls_for(&mb),
        1,
        "{}",
        describe(&world.exchange_requests())
    );
    assert_eq!(world.writes_for(&mb), 0);

    // The user edits a synced contact in Outlook while Exchange forgets the folder's cursors.
    let code = contact_code(2);
    let item = world.crm_item(&mb, "prod", &code).expect("synced");
    world.ews.user_update_item(&mb, &item.id, |i| {
        if let Some(c) = i.as_contact_mut() {
            c.surname = Some("Edited In Outlook".into());
        }
    })?;
    assert!(world.invalidate_cursors(&mb) > 0);

    let report = world.run().await?;
    let alice = user_report(&report, "prod", "alice");
    assert_eq!(alice.outcome, RunOutcome::Succeeded, "{}", report.render());
    // The folder was read again in full (after the refused cursor), the Outlook edit was
    // undone in place, and nothing was created twice or deleted.
    assert!(
        world.delta_calls_for(&mb) >= 2,
        "{}",
        describe(&world.exchange_requests())
    );
    assert_eq!((alice.counts.created, alice.counts.deleted), (0, 0));
    assert_eq!(world.items_doing(&mb, Op::Create), 0);
    assert_eq!(world.items_doing(&mb, Op::Delete), 0);
    let restored = world.crm_item(&mb, "prod", &code).expect("still there");
    assert_eq!(restored.id, item.id, "restored in place");
    assert_mapped(&restored, &world.ln_contact("100", &code)?);
    world.assert_in_sync("prod", 0, &codes(&contacts)).await?;
    assert_eq!(world.crm_items(&mb).len(), 20);

    // The new cursor works: idle again.
    let report = world.run().await?;
    assert_eq!(user_report(&report, "prod", "alice").counts.writes(), 0);
    assert_eq!(world.delta_calls_for(&mb), 1);
    assert_eq!(world.writes_for(&mb), 0);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Scenario 15 / R11: removals, and hands off what isn't ours
// ---------------------------------------------------------------------------------------------

both_backends!(
    scenario_15_contacts_leaving_the_sync_are_removed_and_hand_made_contacts_never_touched,
    multi_thread
);
async fn scenario_15_contacts_leaving_the_sync_are_removed_and_hand_made_contacts_never_touched(
    backend: Backend,
) -> TestResult {
    let contacts = qualifying_contacts(30);
    let world = World::single_on(backend, 1, contacts.clone()).await?;
    let mb = world.mailbox(0, 0).to_owned();
    assert!(!world.run().await?.has_failures());

    // The user's own contacts: one in "CRM Contacts" (no stamp), one in their Contacts folder,
    // one in CRM Contacts with the same name as an LN contact that is about to be removed.
    let folder = world.crm_folder(&mb).expect("CRM Contacts exists");
    let hand = |given: &str, surname: &str| {
        Item::contact(ews_sim::Contact {
            given_name: Some(given.into()),
            surname: Some(surname.into()),
            ..Default::default()
        })
    };
    let (mine, mine_ck) = world
        .ews
        .user_create_item(&mb, &folder, hand("Hand", "Made"))?;
    let twin_of = world.ln_contact("100", &contact_code(4))?;
    let (twin, twin_ck) = world.ews.user_create_item(
        &mb,
        &folder,
        hand(
            twin_of.first_name.as_deref().unwrap_or("x"),
            twin_of.last_name.as_deref().unwrap_or("y"),
        ),
    )?;
    let own_folder = world
        .ews
        .folder_id(&mb, ews_sim::DistinguishedFolder::Contacts)?;
    let (own, own_ck) = world
        .ews
        .user_create_item(&mb, &own_folder, hand("Private", "Friend"))?;

    let (no_sync, deleted, inactive) = (contact_code(4), contact_code(5), contact_code(6));
    world.ln_patch("100", &no_sync, json!({"synchronize": false}))?;
    world.ln_delete("100", &deleted)?;
    world.ln_patch("100", &inactive, json!({"active": false}))?;
    // An unrelated LN edit in the same run, so the run does write around the hand-made items.
    world.ln_patch("100", &contact_code(7), json!({"jobTitle": "Buyer"}))?;

    let report = world.run().await?;
    let alice = user_report(&report, "prod", "alice");
    assert_eq!(alice.outcome, RunOutcome::Succeeded, "{}", report.render());
    assert_eq!(
        (
            alice.counts.deleted,
            alice.counts.updated,
            alice.counts.held
        ),
        (3, 1, 0)
    );
    for code in [&no_sync, &deleted, &inactive] {
        assert!(
            world.crm_item(&mb, "prod", code).is_none(),
            "{code} removed from CRM Contacts"
        );
    }
    world
        .assert_in_sync(
            "prod",
            0,
            &codes_except(&contacts, &[&no_sync, &deleted, &inactive]),
        )
        .await?;
    for (id, ck, what) in [
        (&mine, &mine_ck, "hand-made"),
        (&twin, &twin_ck, "same-name twin"),
        (&own, &own_ck, "own folder"),
    ] {
        let item = world
            .ews
            .item(&mb, id)
            .unwrap_or_else(|| panic!("the {what} contact is still there"));
        assert_eq!(&item.change_key, ck, "the {what} contact was not modified");
    }
    assert_eq!(
        world.items_doing(&mb, Op::Delete),
        3,
        "exactly the three contacts were deleted"
    );
    assert_eq!(world.crm_items(&mb).len(), 27 + 2);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// R30: the mass-deletion gate
// ---------------------------------------------------------------------------------------------

both_backends!(
    r30_mass_deletion_is_held_until_an_administrator_releases_it,
    multi_thread
);
async fn r30_mass_deletion_is_held_until_an_administrator_releases_it(
    backend: Backend,
) -> TestResult {
    let contacts = qualifying_contacts(100);
    let world = World::single_on(backend, 1, contacts.clone()).await?;
    let mb = world.mailbox(0, 0).to_owned();
    assert!(!world.run().await?.has_failures());

    let gone: Vec<String> = (0..30).map(|i| contact_code(i * 3)).collect();
    for code in &gone {
        world.ln_delete("100", code)?;
    }

    for attempt in 0..2 {
        let report = world.run().await?;
        let alice = user_report(&report, "prod", "alice");
        assert_eq!(
            alice.counts.held,
            30,
            "attempt {attempt}: {}",
            report.render()
        );
        assert_eq!(alice.counts.deleted, 0);
        assert_eq!(
            alice.outcome,
            RunOutcome::Partial,
            "held deletions are reported"
        );
        assert_eq!(world.all_requests_doing(Op::Delete), 0);
        assert_eq!(
            world.crm_items(&mb).len(),
            100,
            "attempt {attempt}: nothing deleted"
        );
        let problems = world.problems("prod", "alice").await?;
        let held: Vec<&str> = problems
            .iter()
            .filter(|p| p.problem == ProblemKind::HeldDeletion)
            .map(|p| p.ln_key.as_str())
            .collect();
        assert_eq!(
            held.len(),
            30,
            "attempt {attempt}: each held deletion is listed for the administrator"
        );
        assert!(gone.iter().all(|g| held.contains(&g.as_str())));
    }

    // The administrator releases them (what `lnsync release-deletions` does).
    let mut state = world.user_state("prod", "alice").await?;
    state.release_held_deletions = true;
    world.store.put_user_state(&state).await?;

    let report = world.run().await?;
    let alice = user_report(&report, "prod", "alice");
    assert_eq!(alice.outcome, RunOutcome::Succeeded, "{}", report.render());
    assert_eq!((alice.counts.deleted, alice.counts.held), (30, 0));
    let gone_refs: Vec<&str> = gone.iter().map(String::as_str).collect();
    world
        .assert_in_sync("prod", 0, &codes_except(&contacts, &gone_refs))
        .await?;
    assert!(
        world.problems("prod", "alice").await?.is_empty(),
        "the held deletions are resolved"
    );
    assert!(
        !world
            .user_state("prod", "alice")
            .await?
            .release_held_deletions,
        "the release is used up"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// R4: inactive users
// ---------------------------------------------------------------------------------------------

both_backends!(r4_an_inactive_sync_user_gets_nothing, multi_thread);
async fn r4_an_inactive_sync_user_gets_nothing(backend: Backend) -> TestResult {
    let world = World::single_on(backend, 2, qualifying_contacts(10)).await?;
    let former = world.env("prod").inactive.clone();

    let report = world.run().await?;
    assert!(!report.has_failures(), "{}", report.render());
    let env = env_report(&report, "prod");
    assert!(
        env.users.iter().all(|u| u.user.as_str() != former.user),
        "{}",
        report.render()
    );
    assert_eq!(env.users.len(), 2);
    for u in 0..2 {
        assert_eq!(world.crm_items(world.mailbox(0, u)).len(), 10);
    }
    assert!(!world.exchange_requests().is_empty());
    assert_eq!(
        world.exchange_calls(&former.email),
        0,
        "no Exchange call is made for the inactive user"
    );
    assert!(world.crm_folder(&former.email).is_none());
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Bad input: unreachable systems, throttling, denied impersonation
// ---------------------------------------------------------------------------------------------

both_backends!(
    ln_unreachable_fails_that_environments_users_and_the_other_environment_still_syncs,
    multi_thread
);
async fn ln_unreachable_fails_that_environments_users_and_the_other_environment_still_syncs(
    backend: Backend,
) -> TestResult {
    let world = World::builder()
        .backend(backend)
        .env("prod", "100", 2, qualifying_contacts(10))
        .env("test", "200", 1, qualifying_contacts(10))
        .start()
        .await?;
    assert!(!world.run().await?.has_failures());

    let dead = dead_address()?;
    world.point_ln_at("prod", &format!("http://{dead}"))?;
    world.ln_patch(
        "100",
        &contact_code(0),
        json!({"jobTitle": "Not delivered"}),
    )?;
    world.ln_patch("200", &contact_code(0), json!({"jobTitle": "Delivered"}))?;

    // A new `lnsync run` process reads the changed credentials file.
    let started = Instant::now();
    let report = world
        .run_with(world.store.as_ref(), &SystemClock, &live_connector())
        .await?;
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "a refused connection fails fast"
    );
    assert!(report.has_failures());
    let prod = env_report(&report, "prod");
    assert!(
        matches!(&prod.status, EnvironmentStatus::Failed(e) if e.contains("LN")),
        "{:?}",
        prod.status
    );
    assert_eq!(prod.users.len(), 2, "{}", report.render());
    for u in &prod.users {
        assert_eq!(u.outcome, RunOutcome::Failed);
        let error = u.error.as_deref().unwrap_or_default();
        assert!(
            error.contains("LN") && error.contains(&dead),
            "{}: {error}",
            u.user
        );
    }
    for u in 0..2 {
        assert_eq!(world.exchange_calls(world.mailbox(0, u)), 0);
    }
    let test = user_report(&report, "test", "alice");
    assert_eq!(test.outcome, RunOutcome::Succeeded, "{}", report.render());
    assert_eq!(test.counts.updated, 1);
    let item = world
        .crm_item(world.mailbox(1, 0), "test", &contact_code(0))
        .expect("synced");
    assert_eq!(
        item.item
            .as_contact()
            .and_then(|c| c.job_title.clone())
            .as_deref(),
        Some("Delivered")
    );

    // LN back: the missed change arrives.
    world.point_ln_at("prod", world.ln.base_url())?;
    let report = world
        .run_with(world.store.as_ref(), &SystemClock, &live_connector())
        .await?;
    assert!(!report.has_failures(), "{}", report.render());
    for u in 0..2 {
        let item = world
            .crm_item(world.mailbox(0, u), "prod", &contact_code(0))
            .expect("synced");
        assert_eq!(
            item.item
                .as_contact()
                .and_then(|c| c.job_title.clone())
                .as_deref(),
            Some("Not delivered")
        );
    }
    Ok(())
}

both_backends!(
    exchange_unreachable_fails_each_user_naming_the_url,
    multi_thread
);
async fn exchange_unreachable_fails_each_user_naming_the_url(backend: Backend) -> TestResult {
    let mut world = World::builder()
        .backend(backend)
        .env("prod", "100", 2, qualifying_contacts(10))
        .env("test", "200", 1, qualifying_contacts(10))
        .start()
        .await?;
    let url = world.break_exchange("prod")?;

    let report = world.run().await?;
    assert!(report.has_failures());
    for u in &world.env("prod").users {
        let r = user_report(&report, "prod", &u.user);
        assert_eq!(r.outcome, RunOutcome::Failed);
        let error = r.error.as_deref().unwrap_or_default();
        assert!(error.contains(&url), "{}: {error}", u.user);
        assert_eq!(r.counts.created, 0);
    }
    let test = user_report(&report, "test", "alice");
    assert_eq!(
        (test.outcome, test.counts.created),
        (RunOutcome::Succeeded, 10),
        "{}",
        report.render()
    );
    Ok(())
}

both_backends!(
    a_throttled_mailbox_waits_the_hint_without_delaying_the_others,
    multi_thread
);
async fn a_throttled_mailbox_waits_the_hint_without_delaying_the_others(
    backend: Backend,
) -> TestResult {
    let world = World::single_on(backend, 2, qualifying_contacts(10)).await?;
    let (alice, bob) = (
        world.mailbox(0, 0).to_owned(),
        world.mailbox(0, 1).to_owned(),
    );
    // EWS: ErrorServerBusy with BackOffMilliseconds; Graph: 429 with Retry-After (seconds).
    let hint = Duration::from_secs(2);
    world.throttle_once(&alice, hint);

    let started = Instant::now();
    let report = world.run().await?;
    let elapsed = started.elapsed();

    for user in ["alice", "bob"] {
        let r = user_report(&report, "prod", user);
        assert_eq!(
            (r.outcome, r.counts.created),
            (RunOutcome::Succeeded, 10),
            "{}",
            report.render()
        );
    }
    assert!(elapsed >= hint, "{elapsed:?}");
    world.assert_waited_out_throttling(&alice, &[&bob], hint)?;
    Ok(())
}

both_backends!(
    a_mailbox_the_service_account_may_not_impersonate_fails_alone,
    multi_thread
);
async fn a_mailbox_the_service_account_may_not_impersonate_fails_alone(
    backend: Backend,
) -> TestResult {
    let allowed = vec![
        "alice@corp.example".to_owned(),
        "bob@corp.example".to_owned(),
    ];
    let world = World::builder()
        .backend(backend)
        .env("prod", "100", 3, qualifying_contacts(10))
        .ews_config(ews_sim::SimConfig {
            allowed_impersonation: Some(allowed),
            ..Default::default()
        })
        .start()
        .await?;
    let carol = world.env("prod").users[2].clone();
    assert_eq!(carol.user, "carol");

    let report = world.run().await?;
    assert!(report.has_failures());
    let r = user_report(&report, "prod", "carol");
    assert_eq!(r.outcome, RunOutcome::Failed);
    let error = r.error.as_deref().unwrap_or_default();
    // EWS: the service account may not impersonate carol; Graph: the application access
    // policy leaves her mailbox out.
    let denied = backend.access_denied_code();
    assert!(
        error.contains(denied) && error.contains(&carol.email),
        "{error}"
    );
    for user in ["alice", "bob"] {
        let r = user_report(&report, "prod", user);
        assert_eq!(
            (r.outcome, r.counts.created),
            (RunOutcome::Succeeded, 10),
            "{}",
            report.render()
        );
    }
    // The failure is on record for the console (R39).
    let runs = world.store.last_runs(&EnvironmentId::new("prod")).await?;
    let carol_run = runs
        .iter()
        .find(|r| r.user == UserId::new("carol"))
        .expect("carol's run recorded");
    assert_eq!(carol_run.outcome, RunOutcome::Failed);
    assert!(
        carol_run
            .error
            .as_deref()
            .is_some_and(|e| e.contains(denied))
    );
    Ok(())
}
