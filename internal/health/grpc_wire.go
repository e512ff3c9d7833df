package health

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// The grpc.health.v1 messages are tiny, so they are encoded by hand rather
// than through generated code:
//
//	message HealthCheckRequest  { string service = 1; }
//	message HealthCheckResponse { ServingStatus status = 1; }
//	enum ServingStatus { UNKNOWN = 0; SERVING = 1; NOT_SERVING = 2; SERVICE_UNKNOWN = 3; }
//
// Each message travels in a gRPC length-prefixed frame: a compressed flag
// byte, a big-endian uint32 length, then the message.

// servingStatusServing is HealthCheckResponse.ServingStatus SERVING.
const servingStatusServing = 1

// maxGRPCMessage bounds a response message; a health response is 2 bytes.
const maxGRPCMessage = 4 << 10

var errMalformed = errors.New("malformed protobuf message")

// encodeHealthRequest returns the framed HealthCheckRequest for service.
func encodeHealthRequest(service string) []byte {
	var msg []byte
	if service != "" { // proto3 omits a field holding its default value
		msg = append(msg, 1<<3|2) // field 1, wire type 2 (length-delimited)
		msg = binary.AppendUvarint(msg, uint64(len(service)))
		msg = append(msg, service...)
	}
	frame := make([]byte, 5, 5+len(msg))
	binary.BigEndian.PutUint32(frame[1:], uint32(len(msg)))
	return append(frame, msg...)
}

// readFrame reads one length-prefixed message of at most limit bytes. It
// returns io.EOF when r ends before a new frame starts.
func readFrame(r io.Reader, limit int) ([]byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, errors.New("truncated gRPC frame header")
		}
		return nil, err
	}
	if hdr[0] != 0 {
		return nil, errors.New("compressed gRPC message (none was accepted)")
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n > uint32(limit) {
		return nil, fmt.Errorf("gRPC message of %d bytes exceeds %d", n, limit)
	}
	msg := make([]byte, n)
	if _, err := io.ReadFull(r, msg); err != nil {
		return nil, fmt.Errorf("truncated gRPC message: %w", err)
	}
	return msg, nil
}

// decodeServingStatus returns field 1 of a HealthCheckResponse, skipping
// unknown fields as protobuf requires; an absent field is UNKNOWN (0).
func decodeServingStatus(msg []byte) (int32, error) {
	var status int32
	for len(msg) > 0 {
		tag, n := binary.Uvarint(msg)
		if n <= 0 || tag>>3 == 0 {
			return 0, errMalformed
		}
		msg = msg[n:]
		switch tag & 7 {
		case 0: // varint
			v, n := binary.Uvarint(msg)
			if n <= 0 {
				return 0, errMalformed
			}
			msg = msg[n:]
			if tag>>3 == 1 {
				status = int32(v) // enums are int32 on the wire
			}
		case 1: // 64-bit
			if len(msg) < 8 {
				return 0, errMalformed
			}
			msg = msg[8:]
		case 2: // length-delimited
			l, n := binary.Uvarint(msg)
			if n <= 0 || l > uint64(len(msg)-n) {
				return 0, errMalformed
			}
			msg = msg[n+int(l):]
		case 5: // 32-bit
			if len(msg) < 4 {
				return 0, errMalformed
			}
			msg = msg[4:]
		default:
			return 0, errMalformed
		}
	}
	return status, nil
}

// servingStatusName names a HealthCheckResponse.ServingStatus.
func servingStatusName(s int32) string {
	switch s {
	case 0:
		return "UNKNOWN"
	case 1:
		return "SERVING"
	case 2:
		return "NOT_SERVING"
	case 3:
		return "SERVICE_UNKNOWN"
	}
	return "status " + strconv.Itoa(int(s))
}

// grpcCodes names the gRPC status codes (google.golang.org/grpc/codes).
var grpcCodes = [...]string{
	"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
	"ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
	"ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
	"UNAUTHENTICATED",
}

// grpcCodeName names a gRPC status code.
func grpcCodeName(code int) string {
	if code >= 0 && code < len(grpcCodes) {
		return grpcCodes[code]
	}
	return "code " + strconv.Itoa(code)
}
