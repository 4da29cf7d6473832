@WIRE
Feature: Wire format
  Records are Avro in Confluent framing (magic byte 0, 4-byte schema id), registered under
  <topic>-value, and the registered schemas are compatible with the contract in avro/.

  @WIRE-1 @must
  Scenario: Every record of a saga is framed with a known schema id and matches the contract
    Given the catalogue has product "P1" priced 15000.00 with 50 in stock
    When user "U1" orders 1 of "P1" from store "S1"
    Then a payment in "PAYMENT_WAIT" for 15000.00 exists for the order
    And every record of the order is Confluent-framed with a schema id the registry resolves
    And every record of the order matches its contract schema

  @WIRE-2 @must
  Scenario: The registered schemas are the contract's
    Given the catalogue has product "P1" priced 10.00 with 1 in stock
    When 2 users each order 1 of "P1" at the same time
    Then 1 orders end "ORDER_CONFIRMED" and 1 end "ORDER_CANCELLED"
    And for each saga topic the registry subject "<topic>-value" holds a schema compatible with the contract
