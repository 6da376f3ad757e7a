//! The Redis protocol (RESP) form of the one command the fast path sends,
//! `LPUSH key value...`, written straight from the encoded messages: no
//! Python `bytes` per message and no second copy by the client's packer.

/// Append `LPUSH key values...` as a RESP array of bulk strings, exactly
/// what redis-py (and hiredis's `pack_command`) send for it.
pub fn write_lpush<V: AsRef<[u8]>>(out: &mut Vec<u8>, key: &[u8], values: &[V]) {
    let size = values.iter().map(|v| v.as_ref().len() + 16).sum::<usize>() + key.len() + 32;
    out.reserve(size);
    write_lpush_head(out, key, values.len());
    for v in values {
        bulk(out, v.as_ref());
    }
}

/// The header of `LPUSH key` followed by `count` values, each of which
/// is then appended with [`bulk`].
pub fn write_lpush_head(out: &mut Vec<u8>, key: &[u8], count: usize) {
    out.push(b'*');
    out.extend_from_slice(itoa::Buffer::new().format(count + 2).as_bytes());
    out.extend_from_slice(b"\r\n$5\r\nLPUSH\r\n");
    bulk(out, key);
}

/// Append `MGET` of every `prefix + id` as a RESP array of bulk strings,
/// exactly what hiredis's `pack_command` sends for the prefixed keys.
pub fn write_mget<I: AsRef<[u8]>>(out: &mut Vec<u8>, prefix: &[u8], ids: &[I]) {
    let size = ids
        .iter()
        .map(|i| i.as_ref().len() + prefix.len() + 16)
        .sum::<usize>()
        + 32;
    out.reserve(size);
    out.push(b'*');
    out.extend_from_slice(itoa::Buffer::new().format(ids.len() + 1).as_bytes());
    out.extend_from_slice(b"\r\n$4\r\nMGET\r\n");
    for id in ids {
        let id = id.as_ref();
        out.push(b'$');
        out.extend_from_slice(
            itoa::Buffer::new()
                .format(prefix.len() + id.len())
                .as_bytes(),
        );
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(prefix);
        out.extend_from_slice(id);
        out.extend_from_slice(b"\r\n");
    }
}

/// One RESP bulk string.
pub fn bulk(out: &mut Vec<u8>, data: &[u8]) {
    out.push(b'$');
    out.extend_from_slice(itoa::Buffer::new().format(data.len()).as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mget_keys_are_the_prefix_then_each_id() {
        let mut out = Vec::new();
        write_mget(&mut out, b"p:", &[b"a".as_slice(), b"\xc3\xa9".as_slice()]);
        assert_eq!(
            out,
            b"*3\r\n$4\r\nMGET\r\n$3\r\np:a\r\n$4\r\np:\xc3\xa9\r\n".to_vec()
        );
    }

    #[test]
    fn lpush_is_a_resp_array_of_bulk_strings() {
        let mut out = Vec::new();
        write_lpush(&mut out, b"q\x06\x163", &[b"ab".as_slice(), b"".as_slice()]);
        assert_eq!(
            out,
            b"*4\r\n$5\r\nLPUSH\r\n$4\r\nq\x06\x163\r\n$2\r\nab\r\n$0\r\n\r\n".as_slice()
        );
    }
}
