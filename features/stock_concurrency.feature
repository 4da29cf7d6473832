@STOCK
Feature: Concurrent reservations never oversell
  SELECT … FOR UPDATE serialises reservations of one product: with more orders than units,
  exactly as many orders are confirmed as there are units, the rest are cancelled, and the
  stock ends at zero, never below. The products are the scenario's own, so these run beside
  other scenarios (not `@serial`): other orders in flight only add to the contention.

  @STOCK-1 @must
  Scenario: Twenty orders race for ten units
    Given the catalogue has product "P1" priced 1000.00 with 10 in stock
    When 20 users each order 1 of "P1" at the same time
    Then 10 orders end "ORDER_CONFIRMED" and 10 end "ORDER_CANCELLED"
    And product "P1" has 0 in stock
    And exactly 10 payments exist for these orders

  @STOCK-2 @must
  Scenario: A hundred orders race for the last ten units
    Given the catalogue has product "P1" priced 1000.00 with 10 in stock
    When 100 users each order 1 of "P1" at the same time
    Then 10 orders end "ORDER_CONFIRMED" and 90 end "ORDER_CANCELLED"
    And product "P1" has 0 in stock
    And exactly 10 payments exist for these orders

  # Orders naming the same products in opposite orders (A+B and B+A): an implementation that
  # locks the rows in request order deadlocks, and one that then gives up on the record (or
  # dead-letters it) leaves orders unfinished. The orders come in pairs, one A+B and one B+A
  # placed at the same moment, the next pair once both are decided: with no other order of the
  # scenario in flight, an implementation that handles the two apart (on two partitions, say)
  # takes their locks at the same time, so the opposite-order lock happens every time, not only
  # when a burst lines up. B runs out first, so orders are cancelled too: a cancelled order
  # takes nothing of A either.
  @STOCK-3 @must
  Scenario: Twenty pairs of orders lock the same two products in opposite orders
    Given the catalogue has product "A" priced 10.00 with 30 in stock
    And the catalogue has product "B" priced 20.00 with 20 in stock
    When 20 pairs of users order 1 of "A" and 1 of "B", one of each pair in the opposite order, pair after pair
    Then 20 orders end "ORDER_CONFIRMED" and 20 end "ORDER_CANCELLED"
    And nothing is dead-lettered for these orders
    And product "A" has 10 in stock
    And product "B" has 0 in stock
    And exactly 20 payments exist for these orders
