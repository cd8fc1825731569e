//! The Limine request of this port beyond the shared ones
//! ([`kernel::firmware::limine::requests`]): the device tree. It sits in the same link
//! section, between the shared start and end markers.

use ::limine::request::DtbRequest;
use kernel::firmware::limine::physical;

#[used]
#[unsafe(link_section = ".limine_requests")]
static DTB: DtbRequest = DtbRequest::new();

/// Physical address of the DTB, if the loader handed one over.
pub fn dtb(hhdm: u64) -> Option<u64> {
    DTB.response().map(|r| physical(r.dtb_ptr as u64, hhdm))
}
