// Package coaprig holds the test rigs of the CoAP layer: tether's file
// server served until a test ends (on loopback or over any listener), a
// CoAP client dialled to it, and Requests, a log of the blocks a server is
// asked for, which can also slow the server or hold it at a block. It is
// imported by tests only.
//
// It depends on the CoAP layer (coap, coap/client, coap/fileserver), the
// socket layer beneath it, and testrig, never on download or anything
// above: the internal/layers test ranks it with the CoAP layer, so the
// tests of download, lwm2m and the command can use it and those of the
// socket layer cannot. What needs no tether package belongs in testrig.
package coaprig
