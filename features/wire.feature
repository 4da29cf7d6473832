@WIRE
Feature: Wire format
  Records are Avro in Confluent framing (magic byte 0, 4-byte schema id), registered under
  <topic>-value, and the registered schemas are compatible with the contract in avro/. Records
  written with a newer compatible version of a schema are handled as usual.

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

  # A producer upgraded before its consumers writes with the next version of the schema: an
  # optional field with a default added between existing fields, registered under the subject.
  # A consumer must resolve the writer's schema by the frame's id; decoding with its own schema
  # misreads every field after the new one.
  @WIRE-3 @must
  Scenario: An order.created written with a newer compatible schema is reserved as usual
    Given the catalogue has product "P1" priced 15000.00 with 50 in stock
    When an "order.created" for 2 of "P1" is published, written with the next version of its schema
    Then "stock.reserved" is published for the order
    And the "stock.reserved" event reserves 2 of "P1" leaving 48
    And product "P1" has 48 in stock

  @WIRE-4 @serial @must @needs-pause-product
  Scenario: A stock.reserved written with a newer compatible schema confirms the order
    Given the catalogue has product "P1" priced 15000.00 with 50 in stock
    And the Product Service is paused
    When user "U1" orders 1 of "P1" from store "S1"
    And a "stock.reserved" for the order is published, written with the next version of its schema
    Then the order becomes "ORDER_CONFIRMED"
    And a payment in "PAYMENT_WAIT" for 15000.00 exists for the order
    When the Product Service is resumed
    Then product "P1" has 49 in stock
    And the order still has exactly one payment
