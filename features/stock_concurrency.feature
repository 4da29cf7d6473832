@STOCK
Feature: Concurrent reservations never oversell
  SELECT … FOR UPDATE serialises reservations of one product: with more orders than units,
  exactly as many orders are confirmed as there are units, the rest are cancelled, and the
  stock ends at zero, never below.

  @STOCK-1 @serial @must
  Scenario: Twenty orders race for ten units
    Given the catalogue has product "P1" priced 1000.00 with 10 in stock
    When 20 users each order 1 of "P1" at the same time
    Then 10 orders end "ORDER_CONFIRMED" and 10 end "ORDER_CANCELLED"
    And product "P1" has 0 in stock
    And exactly 10 payments exist for these orders

  @STOCK-2 @serial @must
  Scenario: A hundred orders race for the last ten units
    Given the catalogue has product "P1" priced 1000.00 with 10 in stock
    When 100 users each order 1 of "P1" at the same time
    Then 10 orders end "ORDER_CONFIRMED" and 90 end "ORDER_CANCELLED"
    And product "P1" has 0 in stock
    And exactly 10 payments exist for these orders
