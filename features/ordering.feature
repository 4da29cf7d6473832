@ORDER
Feature: Partition key and ordering
  Every saga event is keyed by orderId, so one order's events share a partition and are
  consumed in order; causes precede effects.

  @ORDER-1 @must
  Scenario: Fifty concurrent orders keep their keys, partitions and causal order
    Given the catalogue has product "P1" priced 1000.00 with 500 in stock
    When 50 users each order 1 of "P1" at the same time
    Then every order ends "ORDER_CONFIRMED"
    And every saga record of these orders is keyed by its orderId
    And for every order "order.created" precedes "stock.reserved" precedes "order.confirmed"
    And no order lost or duplicated an event of "order.created", "stock.reserved", "order.confirmed"
    And the orders' "order.created" records used at least 2 partitions
