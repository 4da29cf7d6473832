//! The Product Service's decisions, free of SQL: whether an order's lines can all be
//! reserved against the catalogue (all lines or none), which lines are short and why, and
//! what a catalogue entry may hold. The handler locks the rows, asks [`reserve`] order by
//! order against the stock it read, and writes back what was decided.

use saga_contract::Money;
use saga_contract::events::{FailedItem, OrderItem};
use std::collections::BTreeMap;

/// A product's price and stock as the handler read them under lock; [`reserve`] lowers the
/// stock as it reserves, so the next order of the same batch sees what is left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stock {
    pub price: Money,
    pub stock: i32,
}

/// The locked products by id.
pub type Catalogue = BTreeMap<String, Stock>;

/// One reserved product of an order (lines naming the same product added up).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reserved {
    pub product_id: String,
    pub quantity: i32,
    /// Stock before this order took its share.
    pub stock_before: i32,
    /// Stock left after it.
    pub stock_left: i32,
}

/// The reservation decision for one order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Every line fits: the catalogue has been lowered by these quantities.
    Reserve(Vec<Reserved>),
    /// At least one line does not: nothing was reserved. `failed` names exactly the failing
    /// products with the stock available to this order; `reason` the failure codes, comma
    /// separated, in a fixed order.
    Refuse { failed: Vec<FailedItem>, reason: String },
}

/// Why a line failed, in the order a reader should see them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Failure {
    ProductNotFound,
    PriceMismatch,
    InsufficientStock,
    InvalidQuantity,
}

impl Failure {
    fn code(self) -> &'static str {
        match self {
            Failure::ProductNotFound => "PRODUCT_NOT_FOUND",
            Failure::PriceMismatch => "PRICE_MISMATCH",
            Failure::InsufficientStock => "INSUFFICIENT_STOCK",
            Failure::InvalidQuantity => "INVALID_QUANTITY",
        }
    }
}

/// One product's demand in an order.
struct Demand {
    quantity: i64,
    unit_price: Money,
}

/// The rules [`reserve`] applies: all `true` in service; each `false` is a seeded fault of the
/// self-test (`services/kit/src/failpoint.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// The client's unit price must be the catalogue's (fault `product::skip-price-check`).
    pub check_price: bool,
    /// A refused order takes nothing (fault `product::keep-good-lines`: the lines before the
    /// first failing one, in request order, stay taken — a reservation not rolled back).
    pub all_or_none: bool,
    /// Lines naming the same product are added up before the stock check (fault
    /// `product::per-line-stock-check`: each line is checked alone against the stock read,
    /// so two lines of 3 pass against a stock of 5).
    pub add_up_lines: bool,
}

/// Decides `items` against `catalogue` and, when every line fits, takes the quantities out of
/// it. A line fails when its product is unknown, its unit price differs from the catalogue's,
/// its quantity is not positive, or the stock is short. Lines naming the same product (the
/// Order Service refuses them at intake; another producer might not) are added up and must
/// agree on the price.
pub fn reserve(items: &[OrderItem], catalogue: &mut Catalogue, rules: Rules) -> Decision {
    let check_price = rules.check_price;
    // BTreeMap: products in id order, the order of the reserved and failed lists.
    let mut demand: BTreeMap<&str, Demand> = BTreeMap::new();
    let mut failures: BTreeMap<&str, Failure> = BTreeMap::new();
    for item in items {
        let entry = demand.entry(&item.product_id).or_insert(Demand { quantity: 0, unit_price: item.unit_price });
        entry.quantity = if rules.add_up_lines {
            entry.quantity + i64::from(item.quantity)
        } else {
            entry.quantity.max(i64::from(item.quantity))
        };
        if item.quantity <= 0 {
            failures.insert(&item.product_id, Failure::InvalidQuantity);
        }
        if entry.unit_price != item.unit_price {
            failures.insert(&item.product_id, Failure::PriceMismatch);
        }
    }
    for (product_id, wanted) in &demand {
        let Some(entry) = catalogue.get(*product_id) else {
            failures.insert(product_id, Failure::ProductNotFound);
            continue;
        };
        if check_price && entry.price != wanted.unit_price {
            failures.entry(product_id).or_insert(Failure::PriceMismatch);
        } else if i64::from(entry.stock) < wanted.quantity {
            failures.entry(product_id).or_insert(Failure::InsufficientStock);
        }
    }
    if failures.is_empty() {
        let reserved = demand
            .iter()
            .map(|(product_id, wanted)| {
                let entry = catalogue.get_mut(*product_id).expect("every demanded product was found");
                // ≤ stock, so it fits (the seeded fault's line-by-line check aside)
                let quantity = if rules.add_up_lines { wanted.quantity as i32 } else { quantity_of(items, product_id) };
                let stock_before = entry.stock;
                entry.stock -= quantity;
                Reserved { product_id: product_id.to_string(), quantity, stock_before, stock_left: entry.stock }
            })
            .collect();
        return Decision::Reserve(reserved);
    }
    if !rules.all_or_none {
        keep_lines_before_the_first_failure(items, catalogue, &failures);
    }
    let failed = failures
        .keys()
        .map(|id| FailedItem {
            product_id: id.to_string(),
            requested_quantity: demand[id].quantity.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32,
            available_stock: catalogue.get(*id).map_or(0, |e| e.stock),
        })
        .collect();
    let mut codes: Vec<Failure> = failures.into_values().collect();
    codes.sort();
    codes.dedup();
    let reason = codes.iter().map(|c| c.code()).collect::<Vec<_>>().join(",");
    Decision::Refuse { failed, reason }
}

/// Seeded fault `product::per-line-stock-check`: the units of `product_id` over all lines.
fn quantity_of(items: &[OrderItem], product_id: &str) -> i32 {
    items.iter().filter(|i| i.product_id == product_id).map(|i| i.quantity).sum()
}

/// Seeded fault `product::keep-good-lines`: lines taken one by one in request order, and on the
/// first that fails, those taken before it are not given back.
fn keep_lines_before_the_first_failure(
    items: &[OrderItem],
    catalogue: &mut Catalogue,
    failures: &BTreeMap<&str, Failure>,
) {
    for item in items.iter().take_while(|i| !failures.contains_key(i.product_id.as_str())) {
        if let Some(entry) = catalogue.get_mut(&item.product_id) {
            entry.stock -= item.quantity;
        }
    }
}

/// A catalogue entry as `PUT /api/v1/products/{id}` may set it.
#[derive(Debug, PartialEq, Eq)]
pub struct Product {
    pub price: Money,
    pub stock: i32,
}

/// Checks a catalogue write: an id of 1 to 128 characters, a price ≥ 0 with at most two
/// decimals, a stock that is not negative and fits the column. The error is for the client.
pub fn catalogue_entry(product_id: &str, price: &str, stock: i64) -> Result<Product, String> {
    if product_id.trim().is_empty() || product_id.len() > 128 {
        return Err("productId must be 1 to 128 characters".into());
    }
    let price = Money::parse(price).ok_or("price must be an amount ≥ 0 with at most two decimals")?;
    let stock = i32::try_from(stock).ok().filter(|s| *s >= 0).ok_or("stock must be between 0 and 2147483647")?;
    Ok(Product { price, stock })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONTRACT: Rules = Rules { check_price: true, all_or_none: true, add_up_lines: true };

    fn item(product: &str, quantity: i32, price: i64) -> OrderItem {
        OrderItem { product_id: product.into(), quantity, unit_price: Money(price) }
    }

    fn catalogue(entries: &[(&str, i64, i32)]) -> Catalogue {
        entries
            .iter()
            .map(|(id, price, stock)| (id.to_string(), Stock { price: Money(*price), stock: *stock }))
            .collect()
    }

    fn refused(decision: Decision) -> (Vec<(String, i32, i32)>, String) {
        match decision {
            Decision::Refuse { failed, reason } => {
                (failed.into_iter().map(|f| (f.product_id, f.requested_quantity, f.available_stock)).collect(), reason)
            }
            Decision::Reserve(r) => panic!("expected a refusal, got a reservation {r:?}"),
        }
    }

    #[test]
    fn all_lines_fit_so_all_are_reserved_and_the_stock_lowered() {
        let mut stock = catalogue(&[("a", 100, 5), ("b", 200, 1)]);
        let decision = reserve(&[item("b", 1, 200), item("a", 2, 100)], &mut stock, CONTRACT);
        assert_eq!(
            decision,
            Decision::Reserve(vec![
                Reserved { product_id: "a".into(), quantity: 2, stock_before: 5, stock_left: 3 },
                Reserved { product_id: "b".into(), quantity: 1, stock_before: 1, stock_left: 0 },
            ])
        );
        assert_eq!(stock, catalogue(&[("a", 100, 3), ("b", 200, 0)]));
    }

    #[test]
    fn one_short_line_reserves_nothing_and_reports_only_the_short_item() {
        let mut stock = catalogue(&[("a", 100, 5), ("b", 200, 1)]);
        let (failed, reason) = refused(reserve(&[item("a", 2, 100), item("b", 3, 200)], &mut stock, CONTRACT));
        assert_eq!(failed, vec![("b".to_string(), 3, 1)], "exactly the short line, with the stock available");
        assert_eq!(reason, "INSUFFICIENT_STOCK");
        assert_eq!(stock, catalogue(&[("a", 100, 5), ("b", 200, 1)]), "all or none: a is untouched");
    }

    #[test]
    fn lines_of_the_same_product_are_added_up_before_the_check() {
        let mut stock = catalogue(&[("a", 100, 4)]);
        let (failed, _) = refused(reserve(&[item("a", 3, 100), item("a", 2, 100)], &mut stock, CONTRACT));
        assert_eq!(failed, vec![("a".to_string(), 5, 4)]);
        let mut stock = catalogue(&[("a", 100, 5)]);
        assert!(
            matches!(reserve(&[item("a", 3, 100), item("a", 2, 100)], &mut stock, CONTRACT), Decision::Reserve(r) if r[0].quantity == 5)
        );
    }

    #[test]
    fn unknown_products_wrong_prices_and_bad_quantities_each_fail_with_their_code() {
        let mut stock = catalogue(&[("a", 100, 5), ("b", 200, 5)]);
        let (failed, reason) =
            refused(reserve(&[item("a", 1, 150), item("b", 0, 200), item("ghost", 1, 100)], &mut stock, CONTRACT));
        assert_eq!(failed, vec![("a".into(), 1, 5), ("b".into(), 0, 5), ("ghost".into(), 1, 0)]);
        assert_eq!(reason, "PRODUCT_NOT_FOUND,PRICE_MISMATCH,INVALID_QUANTITY");
    }

    #[test]
    fn lines_disagreeing_on_a_products_price_fail() {
        let mut stock = catalogue(&[("a", 100, 5)]);
        let (_, reason) = refused(reserve(&[item("a", 1, 100), item("a", 1, 120)], &mut stock, CONTRACT));
        assert_eq!(reason, "PRICE_MISMATCH");
    }

    #[test]
    fn without_the_price_check_a_wrong_price_is_reserved() {
        let mut stock = catalogue(&[("a", 100, 5)]);
        assert!(matches!(
            reserve(&[item("a", 1, 1)], &mut stock, Rules { check_price: false, ..CONTRACT }),
            Decision::Reserve(_)
        ));
    }

    #[test]
    fn the_seeded_faults_keep_the_good_lines_and_check_duplicate_lines_alone() {
        let mut stock = catalogue(&[("a", 100, 5), ("b", 200, 1)]);
        let keep = Rules { all_or_none: false, ..CONTRACT };
        refused(reserve(&[item("a", 2, 100), item("b", 3, 200)], &mut stock, keep));
        assert_eq!(stock, catalogue(&[("a", 100, 3), ("b", 200, 1)]), "the good line before the short one stays taken");
        let mut stock = catalogue(&[("a", 100, 5)]);
        let per_line = Rules { add_up_lines: false, ..CONTRACT };
        assert!(matches!(reserve(&[item("a", 3, 100), item("a", 3, 100)], &mut stock, per_line), Decision::Reserve(_)));
        assert_eq!(stock["a"].stock, -1, "6 units taken from 5: the oversell");
    }

    #[test]
    fn orders_decided_in_turn_see_each_others_reservations() {
        let mut stock = catalogue(&[("a", 100, 3)]);
        assert!(matches!(reserve(&[item("a", 2, 100)], &mut stock, CONTRACT), Decision::Reserve(_)));
        let (failed, _) = refused(reserve(&[item("a", 2, 100)], &mut stock, CONTRACT));
        assert_eq!(failed, vec![("a".to_string(), 2, 1)], "the second order sees the 1 unit left");
    }

    #[test]
    fn catalogue_writes_are_checked() {
        assert_eq!(catalogue_entry("p", "12.50", 3), Ok(Product { price: Money(1250), stock: 3 }));
        assert!(catalogue_entry(" ", "1", 1).is_err());
        assert!(catalogue_entry(&"x".repeat(129), "1", 1).is_err());
        assert!(catalogue_entry("p", "1.234", 1).unwrap_err().starts_with("price"));
        assert!(catalogue_entry("p", "-1", 1).unwrap_err().starts_with("price"));
        assert!(catalogue_entry("p", "1", -1).unwrap_err().starts_with("stock"));
        assert!(catalogue_entry("p", "1", i64::from(i32::MAX) + 1).unwrap_err().starts_with("stock"));
    }
}
