//! The letters prepared for rendering and the composer of their messages, made once per
//! campaign from what [`super::load`] read: every command that renders starts from them, and so
//! do the benchmark and the tests that drive the engine in-process.

use std::sync::Arc;

use crate::campaign::Campaign;
use crate::language::Languages;
use crate::letter::Letter;
use crate::message::Composer;
use crate::render::{Frame, Template};
use crate::unsubscribe::Unsubscribe;

/// The letters prepared once in their frames, and the composer of the campaign's messages with
/// each letter's fixed parts encoded once: what every command that renders starts from, and the
/// benchmark and the tests that drive the engine in-process with it. `letters` are the
/// campaign's, in its order (one without `[letters]`). `unsubscribe` adds the links (in each
/// letter's frame and in the headers); DKIM is the caller's to add.
pub fn prepare(
    campaign: &Campaign,
    letters: &[Letter],
    unsubscribe: Option<&Arc<Unsubscribe>>,
) -> (Template, Composer) {
    if let Some(column) = &campaign.language_column {
        return prepare_languages(campaign, letters, column, unsubscribe);
    }
    let letter = &letters[0];
    let frame = Frame {
        subject: &campaign.subject,
        preheader: &campaign.preheader,
        language: &campaign.language,
        unsubscribe: unsubscribe.map(|links| links.as_ref()),
    };
    let template = Template::new(letter, &frame);
    let mut composer = Composer::new(
        &campaign.id,
        campaign.from.clone(),
        campaign.reply_to.clone(),
        &campaign.subject,
    )
    .with_fixed_parts(&template.fixed_parts());
    if let Some(unsubscribe) = unsubscribe {
        composer = composer.with_unsubscribe(Arc::clone(unsubscribe));
    }
    (template, composer)
}

/// [`prepare`] for a campaign with `[letters]`: a frame per letter, with its subject,
/// preheader, language and footer, and links that name the language (for `serve`'s pages).
fn prepare_languages(
    campaign: &Campaign,
    letters: &[Letter],
    column: &str,
    unsubscribe: Option<&Arc<Unsubscribe>>,
) -> (Template, Composer) {
    let settings = &campaign.letters;
    let links: Vec<Option<Arc<Unsubscribe>>> = settings
        .iter()
        .map(|s| unsubscribe.map(|u| Arc::new(u.in_language(&s.language, &s.footer, &s.link_text))))
        .collect();
    let framed: Vec<(&Letter, Frame)> = letters
        .iter()
        .zip(settings)
        .zip(&links)
        .map(|((letter, s), link)| {
            let frame = Frame {
                subject: &s.subject,
                preheader: &s.preheader,
                language: &s.language,
                unsubscribe: link.as_deref(),
            };
            (letter, frame)
        })
        .collect();
    let tags = settings.iter().map(|s| s.language.clone()).collect();
    let template = Template::per_language(&framed, Languages::new(tags, 0, column.to_owned()));
    let mut composer = Composer::new(
        &campaign.id,
        campaign.from.clone(),
        campaign.reply_to.clone(),
        &settings[0].subject,
    )
    .with_fixed_parts(&template.fixed_parts_of(0));
    if let Some(link) = &links[0] {
        composer = composer.with_unsubscribe(Arc::clone(link));
    }
    for (index, (s, link)) in settings.iter().zip(links).enumerate().skip(1) {
        composer = composer.with_letter(&s.subject, &template.fixed_parts_of(index), link);
    }
    (template, composer)
}
