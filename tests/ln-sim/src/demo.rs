//! Deterministic demo data: realistic-looking sync users, employees and contacts derived from
//! their index (no RNG, so every run and every test sees the same data).

use chrono::NaiveDate;

use crate::model::{Address, Contact, Employee, SyncUser};
use crate::seed::{CompanySeed, Seed};

const FIRST: &[&str] = &[
    "Anna", "Lars", "Sofia", "Jan", "Emma", "Pieter", "Marta", "Tomás", "Ingrid", "Kenji",
    "Olivia", "Ahmed", "Chloé", "Mateo", "Freya", "Luca", "Nora", "Erik", "Amélie", "Ravi",
];
const LAST: &[&str] = &[
    "Berg",
    "de Vries",
    "Novak",
    "Jansen",
    "Lindqvist",
    "García",
    "Müller",
    "O'Neill",
    "Rossi",
    "Dubois",
    "Kowalski",
    "Tanaka",
    "Hansen",
    "Silva",
    "Meyer",
    "Andersen",
    "Fischer",
    "Bakker",
    "Costa",
];
const MIDDLE: &[&str] = &["Maria", "J.", "van", "Louise", "A."];
const TITLES: &[&str] = &["Ms.", "Mr.", "Dr.", "Mrs.", "Prof."];
const JOBS: &[&str] = &[
    "Purchasing Manager",
    "Sales Director",
    "CFO",
    "Plant Manager",
    "Buyer",
    "Logistics Coordinator",
    "IT Manager",
    "Quality Engineer",
    "Account Manager",
    "Operations Lead",
];
const DEPARTMENTS: &[&str] = &[
    "Purchasing",
    "Sales",
    "Finance",
    "Production",
    "Logistics",
    "IT",
    "Quality",
];
const COMPANIES: &[(&str, &str, &str)] = &[
    ("Nordic Steel AB", "nordicsteel.example", "SE"),
    ("Van Dijk Machinery B.V.", "vandijk.example", "NL"),
    ("Müller Antriebstechnik GmbH", "mueller-at.example", "DE"),
    ("Atlantic Foods Ltd", "atlanticfoods.example", "GB"),
    ("Costa Embalagens S.A.", "costa-emb.example", "PT"),
    ("Great Lakes Plastics Inc.", "glplastics.example", "US"),
    ("Rossi Meccanica S.r.l.", "rossimec.example", "IT"),
    ("Dubois Logistique SAS", "dubois-log.example", "FR"),
    ("Tanaka Precision K.K.", "tanaka-prec.example", "JP"),
    ("Kowalski Elektro Sp. z o.o.", "kowalski-el.example", "PL"),
];
const CITIES: &[(&str, &str, Option<&str>, &str, &str)] = &[
    // (city, zip, state, country, language)
    ("Göteborg", "411 04", None, "SE", "sv"),
    ("Eindhoven", "5611 AB", None, "NL", "nl"),
    ("Stuttgart", "70173", None, "DE", "de"),
    ("Manchester", "M1 1AE", None, "GB", "en"),
    ("Porto", "4000-322", None, "PT", "pt"),
    ("Cleveland", "44114", Some("OH"), "US", "en"),
    ("Bologna", "40121", None, "IT", "it"),
    ("Lyon", "69002", None, "FR", "fr"),
    ("Nagoya", "450-0002", None, "JP", "ja"),
    ("Wrocław", "50-001", None, "PL", "pl"),
];
const STREETS: &[&str] = &[
    "Industrivägen",
    "Stationsweg",
    "Hauptstraße",
    "King Street",
    "Rua do Porto",
    "Lakeside Ave",
    "Via Roma",
    "Rue de la République",
    "Sakura-dori",
    "ulica Długa",
];
const PHONE_PREFIX: &[&str] = &[
    "+46 31", "+31 40", "+49 711", "+44 161", "+351 22", "+1 216", "+39 051", "+33 4", "+81 52",
    "+48 71",
];

/// E-mail local part: lower-case ASCII, spaces and apostrophes dropped, accents folded.
fn mail_part(name: &str) -> String {
    name.chars()
        .filter_map(|c| match c {
            'á' | 'à' | 'â' | 'ä' => Some('a'),
            'é' | 'è' | 'ê' => Some('e'),
            'í' => Some('i'),
            'ó' | 'ö' => Some('o'),
            'ü' | 'ú' => Some('u'),
            'ł' => Some('l'),
            ' ' | '\'' | '.' => None,
            c => Some(c.to_ascii_lowercase()),
        })
        .collect()
}

/// Name pair for index `i`: pairs stay distinct for `i < FIRST.len() * LAST.len()` because the
/// last-name index is `i mod n + (i div n)(n + 1)` (n = FIRST.len()) and n + 1 = 21 is coprime
/// with LAST.len() = 19.
fn name(i: usize) -> (&'static str, &'static str) {
    let first = FIRST[i % FIRST.len()];
    let last = LAST[(i + i / FIRST.len()) % LAST.len()];
    (first, last)
}

/// A user login like `aberg`, unique by index.
fn login(i: usize, first: &str, last: &str) -> String {
    let base = format!(
        "{}{}",
        mail_part(first).chars().next().unwrap_or('x'),
        mail_part(last)
    );
    if i < FIRST.len() * LAST.len() {
        base
    } else {
        format!("{base}{i}")
    }
}

/// Demo data for one company: `users` active sync users with matching employees (plus one
/// inactive user), and `contacts` contacts spread over ten business partners.
pub fn demo_seed(company: &str, users: usize, contacts: usize) -> Seed {
    let mut seed = CompanySeed::new(company);
    for i in 0..users {
        let (first, last) = name(i);
        let user = login(i, first, last);
        let suffix = if i < FIRST.len() * LAST.len() {
            String::new()
        } else {
            i.to_string()
        };
        let email = format!(
            "{}.{}{suffix}@demo.example",
            mail_part(first),
            mail_part(last)
        );
        let full = format!("{first} {last}");
        seed.sync_users.push(SyncUser {
            user: user.clone(),
            name: Some(full.clone()),
            active: true,
            email: Some(email.clone()),
        });
        seed.employees.push(Employee {
            employee: format!("E{:05}", i + 1),
            name: Some(full),
            user: Some(user),
            email: Some(email),
        });
    }
    // Realistic awkward cases: an inactive sync user and an employee without a user.
    if users > 0 {
        seed.sync_users.push(SyncUser {
            user: "former".into(),
            name: Some("Former Employee".into()),
            active: false,
            email: Some("former.employee@demo.example".into()),
        });
        seed.employees.push(Employee {
            employee: format!("E{:05}", users + 1),
            name: Some("Warehouse Terminal".into()),
            user: None,
            email: None,
        });
    }
    for i in 0..contacts {
        seed.contacts.push(demo_contact(i).into());
    }
    Seed {
        companies: vec![seed],
    }
}

/// The `i`-th demo contact (`CON000001` for i = 0).
pub fn demo_contact(i: usize) -> Contact {
    // Offset so contact names differ from the user names at the same index.
    let (first, last) = name(i + 7);
    let (company, domain, _) = COMPANIES[i % COMPANIES.len()];
    let (city, zip, state, country, language) = CITIES[i % CITIES.len()];
    let middle = (i % 4 == 1).then(|| MIDDLE[i % MIDDLE.len()].to_string());
    let full_name = match &middle {
        Some(m) => format!("{first} {m} {last}"),
        None => format!("{first} {last}"),
    };
    let initials: String = [first, middle.as_deref().unwrap_or(""), last]
        .iter()
        .filter_map(|p| p.chars().next())
        .filter(|c| c.is_alphabetic())
        .map(|c| format!("{c}."))
        .collect();
    let n = i + 1;
    let sparse = i % 6 == 5; // some contacts have only the basics filled in
    Contact {
        contact: format!("CON{n:06}"),
        first_name: Some(first.to_string()),
        middle_name: middle,
        last_name: Some(last.to_string()),
        full_name: Some(full_name),
        title: (!sparse && i.is_multiple_of(3)).then(|| TITLES[i % TITLES.len()].to_string()),
        suffix: (i % 23 == 4).then(|| "Jr.".to_string()),
        initials: (!sparse).then_some(initials),
        job_title: (!sparse).then(|| JOBS[i % JOBS.len()].to_string()),
        department: (!sparse).then(|| DEPARTMENTS[i % DEPARTMENTS.len()].to_string()),
        assistant: (i % 11 == 3).then(|| "Office Desk".to_string()),
        birthday: (i % 5 == 2).then(|| {
            let day = u32::try_from(i % 28).unwrap_or(0) + 1;
            let month = u32::try_from(i % 12).unwrap_or(0) + 1;
            let year = 1960 + i32::try_from(i % 40).unwrap_or(0);
            NaiveDate::from_ymd_opt(year, month, day).unwrap_or_default()
        }),
        business_partner: Some(format!("BP{:06}", i % COMPANIES.len() + 1)),
        business_partner_name: Some(company.to_string()),
        email: (!sparse || i.is_multiple_of(2))
            .then(|| format!("{}.{}@{domain}", mail_part(first), mail_part(last))),
        primary_phone: Some(format!(
            "{} {:03} {:02} {:02}",
            PHONE_PREFIX[i % PHONE_PREFIX.len()],
            100 + n % 900,
            n % 97,
            n % 89
        )),
        mobile_phone: (!sparse && i.is_multiple_of(2)).then(|| {
            format!(
                "+{} 6{:02} {:03} {:03}",
                30 + i % 20,
                n % 100,
                n % 1000,
                (n * 7) % 1000
            )
        }),
        fax: (i.is_multiple_of(9)).then(|| {
            format!(
                "{} {:03} 99 00",
                PHONE_PREFIX[i % PHONE_PREFIX.len()],
                100 + n % 900
            )
        }),
        address: if sparse {
            Address {
                city: Some(city.to_string()),
                country: Some(country.to_string()),
                ..Address::default()
            }
        } else {
            Address {
                line1: Some(format!("{} {}", STREETS[i % STREETS.len()], 1 + n % 180)),
                line2: (i.is_multiple_of(7)).then(|| {
                    format!(
                        "Building {}",
                        (b'A' + u8::try_from(i % 5).unwrap_or(0)) as char
                    )
                }),
                line3: None,
                city: Some(city.to_string()),
                zip: Some(zip.to_string()),
                state: state.map(str::to_string),
                country: Some(country.to_string()),
            }
        },
        language: Some(language.to_string()),
        // A few contacts are not for synchronization, inactive or opted out.
        synchronize: i % 10 != 9,
        active: i % 25 != 24,
        opted_out: i % 31 == 30,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn deterministic_and_unique() {
        let a = demo_seed("100", 50, 300);
        assert_eq!(a, demo_seed("100", 50, 300));
        let company = &a.companies[0];
        assert_eq!(company.sync_users.len(), 51);
        let emails: HashSet<_> = company.sync_users.iter().map(|u| u.email.clone()).collect();
        assert_eq!(emails.len(), 51);
        let logins: HashSet<_> = company.sync_users.iter().map(|u| u.user.clone()).collect();
        assert_eq!(logins.len(), 51);
        assert_eq!(
            company.sync_users[0].email.as_deref(),
            Some("anna.berg@demo.example")
        );
        let keys: HashSet<_> = company
            .contacts
            .iter()
            .map(|c| c.contact.contact.clone())
            .collect();
        assert_eq!(keys.len(), 300);
        assert!(company.contacts.iter().any(|c| !c.contact.synchronize));
        assert!(company.contacts.iter().any(|c| c.contact.email.is_none()));
        assert!(
            company
                .contacts
                .iter()
                .any(|c| c.contact.address.line1.is_none())
        );
        // Employees of active users carry exactly the sync user's e-mail (R5 matches case-sensitively).
        for (user, employee) in company.sync_users.iter().zip(&company.employees).take(50) {
            assert_eq!(user.email, employee.email);
            assert_eq!(Some(&user.user), employee.user.as_ref());
        }
    }

    #[test]
    fn user_names_are_distinct_for_many_users() {
        let names: HashSet<_> = (0..FIRST.len() * LAST.len()).map(name).collect();
        assert_eq!(names.len(), FIRST.len() * LAST.len());
    }
}
