@PUSH
Feature: A push gateway that fails
  The push gateway is another team's service and fails as services do: for a while it answers
  5xx, does not answer before the client gives up, or answers slowly. Orders placed meanwhile
  go through the saga as usual — the pushes wait, the orders do not: the gateway stays down until
  they have settled (at most [capacity] settle_seconds, so speed is not judged here) — and once it
  works again every push arrives: one per event the order is due, counted by eventId (a resend
  with the same eventId is at-least-once delivery, allowed; a push dropped at the first error
  is lost). The suite's own push sink plays the gateway, so this runs on every backend. It fails
  towards this scenario's pushes only — those for its own users — and takes every other push as
  usual, so these scenarios run alongside others.

  @PUSH-1 @must
  Scenario Outline: A gateway that <fails> holds pushes back, loses none and stalls no order
    Given the catalogue has product "P1" priced 10.00 with 40 in stock
    And orders flow at 10 per second for product "P1"
    When the load has placed 5 orders
    And the push gateway <fails>
    And the load has placed 15 more orders
    Then every order placed since the push gateway failed settles, confirmed with a payment or cancelled, while it still fails
    And the push gateway was disturbed by pushes while it failed
    When the push gateway works again
    And the load has placed 5 more orders
    And the load stops
    Then every order the load placed settles: confirmed with a payment, or cancelled
    And each order got exactly one push of each kind it is due, counted by eventId
    And no order of the load has a duplicate or conflicting effect on Kafka
    And the stock of "P1" fell by exactly the units confirmed

    Examples:
      | fails                                 |
      | starts answering 503                  |
      | stops answering                       |
      | starts taking 2 s to answer each push |
