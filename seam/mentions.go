package seam

// ParseMentions returns the handles mentioned in content, unique, in first-seen
// order. A mention is an '@' at the start of the content or after a character that
// can't be part of a handle or an address ([A-Za-z0-9_.@-]), followed by a handle
// that starts and ends with [A-Za-z0-9] and may hold '.', '_' and '-' inside:
// "ping @bob." mentions bob; "alice@example.com" mentions nobody.
func ParseMentions(content string) []Handle {
	var out []Handle
	seen := map[string]bool{}
	for i := 0; i < len(content); i++ {
		if content[i] != '@' || (i > 0 && isAddressByte(content[i-1])) {
			continue
		}
		j := i + 1
		for j < len(content) && isHandleByte(content[j]) {
			j++
		}
		// The handle ends on its last alphanumeric: trailing '.', '_' and '-' are
		// punctuation of the sentence, not part of the handle.
		end := j
		for end > i+1 && !isAlnum(content[end-1]) {
			end--
		}
		if end > i+1 && isAlnum(content[i+1]) {
			h := content[i+1 : end]
			if !seen[h] {
				seen[h] = true
				out = append(out, Handle(h))
			}
		}
		i = j - 1
	}
	return out
}

func isAlnum(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9'
}

func isHandleByte(b byte) bool { return isAlnum(b) || b == '.' || b == '_' || b == '-' }

func isAddressByte(b byte) bool { return isHandleByte(b) || b == '@' }
