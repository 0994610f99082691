//! An image of the manifest: which stage it is, for which platforms, with
//! which tags and settings.

use indexmap::IndexMap;
use toml::Spanned;

use super::{Lowerer, has_variable, located, scalar};
use crate::ir::{Image, Located, reference};
use crate::manifest::schema::{self, Scalar};

impl Lowerer<'_> {
    pub(super) fn image(&mut self, name: Spanned<String>, image: schema::Image) -> Image {
        self.name("image", &name);
        let stage = image.stage;
        let stage_span = stage.span();
        let stage_name = stage.into_inner();
        let stage_name = stage_name
            .strip_prefix("stage:")
            .map(str::to_owned)
            .unwrap_or(stage_name);
        for tag in &image.tags {
            self.reference(tag, false);
            if !has_variable(tag.get_ref())
                && !tag.get_ref().contains(['/', ':', '.'])
                && let Err(why) = reference::validate(tag.get_ref())
            {
                self.error(
                    tag.span(),
                    format!("invalid tag `{}`: {why}", tag.get_ref()),
                    "write `[registry/]repository[:tag]`, e.g. `registry.example.com/app:1.0`",
                );
            }
        }
        let platforms = self.platforms(image.platforms.unwrap_or_default());
        let table = |t: IndexMap<Spanned<String>, Spanned<Scalar>>| {
            t.into_iter()
                .map(|(k, v)| (k.into_inner(), scalar(v)))
                .collect()
        };
        Image {
            name: located(name),
            stage: Located::new(stage_name, stage_span),
            tags: image.tags.into_iter().map(located).collect(),
            platforms,
            labels: table(image.labels),
            annotations: table(image.annotations),
        }
    }
}
