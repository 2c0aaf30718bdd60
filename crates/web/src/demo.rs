//! The demo catalog `storefort serve --demo` seeds on first start, so a new
//! store shows something real: a small shop of coffee, kitchen and apparel.

use storefort_core::{Actor, EventKind, SecurityEvent};
use storefort_store::{NewProduct, NewVariant, Store, StoreError};

/// (handle, title, description, collections, variants as (sku, title, cents, stock)).
type DemoProduct = (
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
    &'static [(&'static str, &'static str, i64, i64)],
);

#[rustfmt::skip]
const PRODUCTS: &[DemoProduct] = &[
    ("ethiopia-yirgacheffe", "Ethiopia Yirgacheffe", "Washed heirloom coffee with notes of jasmine, bergamot and lemon.", &["coffee"],
        &[("COF-ETH-250", "250 g", 1290, 40), ("COF-ETH-1000", "1 kg", 4390, 12)]),
    ("colombia-huila", "Colombia Huila", "Sweet and round: caramel, red apple, milk chocolate.", &["coffee"],
        &[("COF-COL-250", "250 g", 1150, 55), ("COF-COL-1000", "1 kg", 3890, 15)]),
    ("kenya-nyeri", "Kenya Nyeri AA", "Blackcurrant, grapefruit and a syrupy body.", &["coffee"],
        &[("COF-KEN-250", "250 g", 1490, 25)]),
    ("brazil-cerrado", "Brazil Cerrado", "Nutty, low acidity, made for espresso.", &["coffee"],
        &[("COF-BRA-250", "250 g", 990, 80), ("COF-BRA-1000", "1 kg", 3290, 30)]),
    ("house-espresso", "House Espresso Blend", "Our everyday blend: cocoa, hazelnut, brown sugar.", &["coffee", "bestsellers"],
        &[("COF-HSE-250", "250 g", 1090, 120), ("COF-HSE-1000", "1 kg", 3590, 40)]),
    ("decaf-mexico", "Decaf Mexico (Swiss Water)", "Chemical-free decaf with milk chocolate sweetness.", &["coffee"],
        &[("COF-DEC-250", "250 g", 1190, 30)]),
    ("pour-over-dripper", "Ceramic Pour-Over Dripper", "Hand-glazed size 02 dripper for one to four cups.", &["brewing"],
        &[("BRW-DRP-WHT", "White", 2900, 18), ("BRW-DRP-BLK", "Black", 2900, 14)]),
    ("paper-filters", "Paper Filters (100)", "Unbleached size 02 cone filters.", &["brewing"],
        &[("BRW-FLT-100", "Default", 590, 200)]),
    ("gooseneck-kettle", "Gooseneck Kettle 0.9 l", "Stainless steel kettle with a thermometer in the lid.", &["brewing"],
        &[("BRW-KTL-090", "Default", 5900, 9)]),
    ("hand-grinder", "Hand Grinder", "Conical steel burrs, 40 click settings, fits in a travel bag.", &["brewing", "bestsellers"],
        &[("BRW-GRD-HND", "Default", 8900, 7)]),
    ("french-press", "French Press 1 l", "Borosilicate glass and a double stainless mesh.", &["brewing"],
        &[("BRW-FRP-100", "Default", 3490, 16)]),
    ("cold-brew-bottle", "Cold Brew Bottle", "Make a litre of cold brew overnight in the fridge.", &["brewing"],
        &[("BRW-CLD-100", "Default", 2490, 20)]),
    ("digital-scale", "Brew Scale with Timer", "0.1 g resolution, auto-timer, USB-C rechargeable.", &["brewing"],
        &[("BRW-SCL-001", "Default", 4490, 11)]),
    ("espresso-cup-set", "Espresso Cup Set (2)", "Thick-walled porcelain cups that hold the heat.", &["kitchen"],
        &[("KIT-ESP-2", "Default", 1990, 24)]),
    ("latte-mug", "Stoneware Latte Mug", "350 ml, dishwasher safe, each glaze slightly different.", &["kitchen"],
        &[("KIT-MUG-SND", "Sand", 1690, 30), ("KIT-MUG-SEA", "Sea", 1690, 22)]),
    ("milk-jug", "Milk Frothing Jug 600 ml", "Sharp spout for latte art.", &["kitchen"],
        &[("KIT-JUG-600", "Default", 1890, 19)]),
    ("tea-towel", "Linen Tea Towel", "Stonewashed linen, woven in Lithuania.", &["kitchen"],
        &[("KIT-TWL-NAT", "Natural", 1290, 35), ("KIT-TWL-RST", "Rust", 1290, 28)]),
    ("storage-canister", "Airtight Coffee Canister", "One-way valve keeps 500 g of beans fresh.", &["kitchen"],
        &[("KIT-CAN-500", "Default", 2690, 17)]),
    ("logo-tee", "Storefort Logo Tee", "Organic cotton, regular fit.", &["apparel"],
        &[("APP-TEE-S", "S", 2490, 15), ("APP-TEE-M", "M", 2490, 25), ("APP-TEE-L", "L", 2490, 20), ("APP-TEE-XL", "XL", 2490, 8)]),
    ("barista-apron", "Waxed Canvas Apron", "Leather straps, two front pockets.", &["apparel"],
        &[("APP-APR-BRN", "Brown", 5490, 6), ("APP-APR-BLK", "Black", 5490, 9)]),
    ("beanie", "Merino Beanie", "Fine merino rib knit, one size.", &["apparel"],
        &[("APP-BNE-GRY", "Grey", 2990, 14), ("APP-BNE-OLV", "Olive", 2990, 10)]),
    ("gift-card-25", "Gift Box: Two Coffees", "Two 250 g bags of the roaster's choice in a gift box.", &["gifts", "bestsellers"],
        &[("GFT-BOX-2", "Default", 2590, 25)]),
    ("tasting-flight", "Tasting Flight", "Four 100 g bags from four origins, with tasting notes.", &["gifts", "coffee"],
        &[("GFT-FLT-4", "Default", 2890, 20)]),
    ("subscription-starter", "Brewing Starter Kit", "Dripper, filters, a scale and 250 g of house blend.", &["gifts", "brewing"],
        &[("GFT-KIT-1", "Default", 8990, 5)]),
];

/// Seeds the demo catalog if the store has no products yet. Returns how many
/// products were added (0 when the catalog already had some).
pub async fn seed_if_empty(store: &Store, currency: &str, now_ms: i64) -> Result<usize, StoreError> {
    if !store.catalog_is_empty().await? {
        return Ok(0);
    }
    let mut tx = store.begin_write(now_ms, "system", None).await?;
    for (handle, title, description, collections, variants) in PRODUCTS {
        let product = NewProduct {
            id: uuid::Uuid::now_v7().to_string(),
            handle: (*handle).into(),
            title: (*title).into(),
            description: (*description).into(),
            collections: collections.iter().map(|c| ((*c).to_owned(), title_case(c))).collect(),
            variants: variants
                .iter()
                .map(|(sku, vtitle, cents, stock)| NewVariant {
                    id: uuid::Uuid::now_v7().to_string(),
                    sku: (*sku).into(),
                    title: (*vtitle).into(),
                    price_amount: *cents,
                    currency: currency.to_owned(),
                    stock: *stock,
                })
                .collect(),
        };
        tx.insert_product(&product).await?;
    }
    tx.commit(SecurityEvent::new(EventKind::CatalogSeeded, Actor::System).with("products", PRODUCTS.len() as i64))
        .await?;
    Ok(PRODUCTS.len())
}

fn title_case(handle: &str) -> String {
    let mut c = handle.chars();
    c.next().map(|f| f.to_uppercase().collect::<String>() + c.as_str()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_catalog_is_big_enough_and_valid() {
        assert!(PRODUCTS.len() >= 20);
        let mut skus = std::collections::HashSet::new();
        for (_, _, _, _, variants) in PRODUCTS {
            assert!(!variants.is_empty());
            for (sku, _, cents, stock) in *variants {
                assert!(storefort_core::Sku::parse(sku).is_ok());
                assert!(skus.insert(*sku), "duplicate {sku}");
                assert!(*cents > 0 && *stock > 0);
            }
        }
    }
}
