package config

import (
	"fmt"
	"strings"
)

// OriginState is what an origin is before it has earned anything:
// policy.new_origin, for origins learnt from DNS (dkim.dns_key_domains)
// rather than from the keyring file.
type OriginState string

// The states.
const (
	OriginTrusted   OriginState = "trusted"
	OriginProbation OriginState = "probation"
)

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *OriginState) UnmarshalText(b []byte) error {
	switch v := OriginState(strings.ToLower(strings.TrimSpace(string(b)))); v {
	case OriginTrusted, OriginProbation:
		*s = v
		return nil
	}
	return fmt.Errorf("%q: want \"trusted\" or \"probation\"", b)
}

// MarshalText implements encoding.TextMarshaler.
func (s OriginState) MarshalText() ([]byte, error) { return []byte(s), nil }

// validateTrust checks the keys of earned origin trust.
func (p Policy) validateTrust() []error {
	var errs []error
	if p.NewOrigin != OriginTrusted && p.NewOrigin != OriginProbation {
		errs = append(errs, fmt.Errorf("policy.new_origin %q: want \"trusted\" or \"probation\"", p.NewOrigin))
	}
	if p.ProbationCorroborations < 1 {
		errs = append(errs, fmt.Errorf("policy.probation_corroborations must be at least 1 (to end probation at once, remove probation from the keyring line)"))
	}
	if p.MaxNewListingsPerHour < 0 {
		errs = append(errs, fmt.Errorf("policy.max_new_listings_per_hour must be 0 (no cap) or more"))
	}
	if p.DisputeShare < 0 || p.DisputeShare > 1 {
		errs = append(errs, fmt.Errorf("policy.dispute_share %v: want a share between 0 (never demote) and 1", p.DisputeShare))
	}
	if p.DisputeMinAddresses < 1 {
		errs = append(errs, fmt.Errorf("policy.dispute_min_addresses must be at least 1"))
	}
	return errs
}
