//! Card products: what a wallet shows of a card — its issuer's and product's names, colours, card art
//! and terms — from `[[issuers.products]]`. A card's product is the one whose BIN prefix is the
//! longest match of the card's BIN, else the issuer's product without prefixes, else a plain one in
//! the issuer's name. Card art is the configured image file, or drawn here from the colours.

use serde::Serialize;

use crate::config::{IssuerConfig, ProductConfig};

/// The product the plain card of an issuer with no products is shown as.
const PLAIN: &str = "standard";

/// What a wallet shows of a card (no card data: the same for every card of the product).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CardMetadata {
    pub issuer_name: String,
    pub product_id: String,
    pub product_name: String,
    pub background_color: String,
    pub foreground_color: String,
    pub terms_url: Option<String>,
    /// Where the product's card art is served (`GET`, no key needed).
    pub card_art_url: String,
}

/// The product of a card of `issuer` with BIN `bin`.
pub fn product_of<'a>(issuer: &'a IssuerConfig, bin: &str) -> Option<&'a ProductConfig> {
    issuer
        .products
        .iter()
        .flat_map(|p| p.bin_prefixes.iter().map(move |b| (b, p)))
        .filter(|(b, _)| bin.starts_with(b.as_str()))
        .max_by_key(|(b, _)| b.len())
        .map(|(_, p)| p)
        .or_else(|| issuer.products.iter().find(|p| p.bin_prefixes.is_empty()))
}

/// The card metadata of a card of `issuer` with BIN `bin`.
pub fn metadata(issuer: &IssuerConfig, bin: &str) -> CardMetadata {
    match product_of(issuer, bin) {
        Some(p) => CardMetadata {
            issuer_name: issuer.name.clone(),
            product_id: p.id.clone(),
            product_name: p.name.clone(),
            background_color: p.background_color.clone(),
            foreground_color: p.foreground_color.clone(),
            terms_url: p.terms_url.clone(),
            card_art_url: format!("/v1/card-art/{}/{}", issuer.id, p.id),
        },
        None => CardMetadata {
            issuer_name: issuer.name.clone(),
            product_id: PLAIN.into(),
            product_name: issuer.name.clone(),
            background_color: "#37474F".into(),
            foreground_color: "#FFFFFF".into(),
            terms_url: None,
            card_art_url: format!("/v1/card-art/{}/{PLAIN}", issuer.id),
        },
    }
}

/// The card art drawn from a product's colours and names: an SVG the size of an ID-1 card's
/// proportions (85.60 × 53.98 mm).
pub fn drawn_art(m: &CardMetadata) -> String {
    format!(
        concat!(
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="428" height="270" viewBox="0 0 428 270" role="img" aria-label="{name}">"#,
            r#"<rect width="428" height="270" rx="18" fill="{bg}"/>"#,
            r#"<rect x="32" y="96" width="56" height="42" rx="6" fill="{fg}" opacity="0.35"/>"#,
            r#"<text x="32" y="56" font-family="sans-serif" font-size="24" font-weight="bold" fill="{fg}">{issuer}</text>"#,
            r#"<text x="32" y="236" font-family="sans-serif" font-size="18" fill="{fg}">{name}</text>"#,
            "</svg>"
        ),
        name = xml_text(&m.product_name),
        issuer = xml_text(&m.issuer_name),
        bg = m.background_color,
        fg = m.foreground_color,
    )
}

fn xml_text(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '&' => "&amp;".to_string(),
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            '"' => "&quot;".to_string(),
            '\'' => "&apos;".to_string(),
            c => c.to_string(),
        })
        .collect()
}

/// Whether `s` is a colour as `#RRGGBB`.
pub fn is_colour(s: &str) -> bool {
    s.len() == 7 && s.starts_with('#') && s[1..].bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issuer() -> IssuerConfig {
        let toml = r##"
            id = "hanbit"
            name = "Hanbit <Card>"
            bin_prefixes = ["411111", "424242"]
            token_bin_prefixes = ["461000"]
            token_imk_ac = "00"
            [[products]]
            id = "classic"
            name = "Classic"
            background_color = "#112233"
            foreground_color = "#FFFFFF"
            [[products]]
            id = "platinum"
            name = "Platinum"
            bin_prefixes = ["4242", "424242"]
            background_color = "#445566"
            foreground_color = "#000000"
            terms_url = "https://example.com/terms"
        "##;
        toml::from_str(toml).unwrap()
    }

    #[test]
    fn the_longest_bin_prefix_wins_else_the_default_product() {
        let i = issuer();
        assert_eq!(metadata(&i, "424242").product_id, "platinum");
        assert_eq!(metadata(&i, "424299").product_id, "platinum");
        let m = metadata(&i, "411111");
        assert_eq!((m.product_id.as_str(), m.card_art_url.as_str()), ("classic", "/v1/card-art/hanbit/classic"));
        let mut bare = i.clone();
        bare.products.clear();
        assert_eq!(metadata(&bare, "411111").product_id, "standard");
    }

    #[test]
    fn drawn_art_escapes_names() {
        let svg = drawn_art(&metadata(&issuer(), "411111"));
        assert!(svg.contains("Hanbit &lt;Card&gt;") && !svg.contains("<Card>"), "{svg}");
        assert!(svg.starts_with("<svg") && svg.contains("#112233"));
        assert!(is_colour("#A1b2C3") && !is_colour("red") && !is_colour("#12345"));
    }
}
